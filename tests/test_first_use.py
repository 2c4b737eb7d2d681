"""What a first-time teacher ran into (issue 18): settings that survive other pages, the achieved analysis rate,
the app's configuration for a quiet first run."""
import tomllib

from streamlit.testing.v1 import AppTest

from tests.conftest import REPO


def remembered_page():
    import streamlit as st

    from ui.common import remember

    if st.session_state.get("on_this_page", True):
        st.text_input("Class name", key=remember("class-name", "My class"))
        st.slider("Frames analysed per second", 0.5, 8.0, step=0.5, key=remember("analysis-fps", 2.0))


def test_settings_survive_a_visit_to_another_page():
    at = AppTest.from_function(remembered_page).run()
    assert at.text_input[0].value == "My class" and at.slider[0].value == 2.0
    at.text_input[0].input("Maths 4B").run()
    at.slider[0].set_value(3.5).run()
    at.session_state["on_this_page"] = False  # another page: these widgets are not drawn, Streamlit forgets them
    at.run()
    assert not at.text_input
    at.session_state["on_this_page"] = True
    at.run()
    assert at.text_input[0].value == "Maths 4B" and at.slider[0].value == 3.5


def test_achieved_rate_is_measured_over_the_last_seconds(stand_in_model, tmp_path):
    from emotion.classifier import EmotionClassifier
    from emotion.live import RECENT_SECONDS, LiveSession
    from emotion.session import SessionSettings
    from tests.synthetic import gallery_frame

    clock = {"now": 0.0}
    live = LiveSession(EmotionClassifier.load(stand_in_model), None, SessionSettings(analysis_fps=2), title="t",
                       source_kind="camera", clock=lambda: clock["now"])
    frame, _ = gallery_frame(["happy", "sad"], cols=2, size=(320, 240))
    for i in range(int(RECENT_SECONDS * 10) - 20):  # a 10 frames/s camera, not yet RECENT_SECONDS long
        clock["now"] = i / 10
        live.process(frame)
    assert live.status().analysed_fps is None
    for i in range(int(RECENT_SECONDS * 10) - 20, int(RECENT_SECONDS * 10) + 30):
        clock["now"] = i / 10
        live.process(frame)
    assert abs(live.status().analysed_fps - 2.0) <= 0.2
    clock["now"] += 20  # the camera stopped: nothing analysed lately
    assert live.status().analysed_fps == 0


def test_analyses_missed_while_the_server_was_busy_are_made_up(stand_in_model):
    from emotion.classifier import EmotionClassifier
    from emotion.live import LiveSession
    from emotion.session import SessionSettings
    from tests.synthetic import gallery_frame

    clock = {"now": 0.0}
    live = LiveSession(EmotionClassifier.load(stand_in_model), None, SessionSettings(analysis_fps=2), title="t",
                       source_kind="camera", clock=lambda: clock["now"])
    frame, _ = gallery_frame(["happy", "sad"], cols=2, size=(320, 240))
    for i in range(60):  # 6 s of a 10 frames/s camera whose frames from 2.0 to 2.9 s never came through
        if not 20 <= i < 30:
            clock["now"] = i / 10
            live.process(frame)
    assert live.status().frames_analysed == 12  # 2 a second, the two missed at 2.0 and 2.5 s made up after


def test_a_busy_server_classifies_each_student_less_often_and_recovers(stand_in_model):
    from emotion.classifier import EmotionClassifier
    from emotion.live import MAX_STRETCH, LiveSession
    from emotion.session import SessionSettings
    from tests.synthetic import gallery_frame

    clock = {"now": 0.0}
    live = LiveSession(EmotionClassifier.load(stand_in_model), None, SessionSettings(analysis_fps=2), title="t",
                       source_kind="camera", clock=lambda: clock["now"])
    frame, _ = gallery_frame(["happy", "sad"], cols=2, size=(320, 240))
    live.process(frame)
    assert live.status().classify_seconds == 2.0 and not live.status().classify_slowed  # the default 0.5/s
    for i in range(1, 20):  # the server gets to this class's frames only every 0.8 s: analyses come late
        clock["now"] = 0.8 * i
        live.process(frame)
    assert live.status().classify_slowed and live.status().classify_seconds == 2.0 * MAX_STRETCH
    start = clock["now"]
    for i in range(600):  # then 60 s of frames on time
        clock["now"] = start + i / 10
        live.process(frame)
    assert not live.status().classify_slowed and live.status().classify_seconds < 2.2


def test_a_fresh_install_runs_quietly_without_a_deploy_button():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"  # .venv inside the folder overflowed inotify
    assert config["client"] == {"toolbarMode": "viewer", "showSidebarNavigation": False}
    from ui.nav import PAGES

    assert [label for _, label, _, roles in PAGES if "teacher" in roles] == ["Live class", "Sessions"]
