"""Lesson markers: checked text, the markers CSV, the background writer, the CLI, the charts (AppTest), the
analyst's editor, a video analysed with a markers CSV, class-only mode, and a marker added in a live class in
Chromium that outlives a killed server."""
import json
import os
import re
import signal
import sqlite3
import time
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from emotion.aggregate import MoodAggregator
from emotion.markers import (MARKER_COLUMNS, MarkerError, format_time, marker_rows, mood_around, new_marker,
                             parse_markers_csv, parse_time)
from emotion.recorder import SessionRecorder
from emotion.session_csv import to_csv_bytes
from emotion.store import SessionStore, utcnow
from tests.browser import REPO, chromium, requires_chromium, streamlit_process
from tests.conftest import run_module, wait_until
from tests.sessions import CLASS_MINUTES, lesson_markers, seed_markers
from tests.synthetic import gallery_frame, write_video
from tests.test_dashboard import FACES, _app, _fake_camera, _start_camera, app_env  # noqa: F401 (a fixture)

PAGE = "pages/2_Sessions.py"


def test_marker_text_is_plain_bounded_and_timed():
    marker = new_marker("  new\ttopic\n", "fractions\x00 and\r\ndecimals", seconds=12)
    assert (marker.label, marker.text, marker.seconds) == ("new topic", "fractions and decimals", 12.0)
    assert new_marker("note", "x" * 200, seconds=0).caption == "note: " + "x" * 33 + "…"
    for label, text, seconds, message in [(" \n ", "", 1, "label cannot be empty"),
                                          ("a" * 41, "", 1, "label has at most 40"),
                                          ("quiz", "t" * 201, 1, "text has at most 200"),
                                          ("quiz", "", -1, "between 0 and"), ("quiz", "", float("nan"), "number")]:
        with pytest.raises(MarkerError, match=message):
            new_marker(label, text, seconds=seconds)
    assert [parse_time(t) for t in ("754", "754.5", "12:34", "1:02:03")] == [754, 754.5, 754, 3723]
    for bad in ("12:61", "ten", "1:75:00", "-5"):
        with pytest.raises(MarkerError):
            parse_time(bad)
    assert [format_time(s) for s in (0, 59.6, 754, 3723)] == ["0:00", "1:00", "12:34", "1:02:03"]


def test_markers_csv_is_read_with_messages_that_name_the_row():
    read = parse_markers_csv(b'\xef\xbb\xbftime,label,text\n0:30,question,\n\n12:05,quiz,"fractions, 5 questions"\n'
                             b"800,break\n")
    assert [(m.seconds, m.label, m.text) for m in read] == [(30, "question", ""), (725, "quiz",
                                                                                   "fractions, 5 questions"),
                                                            (800, "break", "")]
    assert [m.label for m in parse_markers_csv(b"5,new topic\n")] == ["new topic"]  # no header
    for data, message in [(b"", "is empty"), (b"time,lable\n1,quiz\n", "row 1 (header): unknown column 'lable'"),
                          (b"time,text\n1,x\n", "no 'label' column"), (b"1,quiz,text,extra\n", "row 1: 4 cells"),
                          (b"time,label\n1,quiz\nsoon,break\n", "row 3: 'soon' is not a time"),
                          (b"1,\n", "row 1: a marker's label cannot be empty"), (b",quiz\n", "the time is empty"),
                          (b"1," + b"q" * 41 + b"\n", "at most 40")]:
        with pytest.raises(MarkerError, match=re.escape(message)):
            parse_markers_csv(data, "lesson.csv")
    exported = to_csv_bytes(marker_rows("s1", [new_marker("note", "=HYPERLINK(1)", seconds=61)], 60), MARKER_COLUMNS)
    assert b"'=HYPERLINK(1)" in exported  # a spreadsheet shows it as text
    assert [(m.seconds, m.text) for m in parse_markers_csv(exported)] == [(61, "=HYPERLINK(1)")]  # and it reads back


def test_mood_before_and_after_a_marker():
    quiz = mood_around(CLASS_MINUTES, lesson_markers()[1], minute_seconds=60)
    assert (quiz.before_minutes, quiz.after_minutes) == ((1, 2), (3, 4))  # minute 2 saw no face
    assert quiz.before == CLASS_MINUTES[1].shares
    assert quiz.negative(quiz.before) == 0 and quiz.negative(quiz.after) == pytest.approx(0.725)
    assert quiz.change == pytest.approx(0.725)
    start = mood_around(CLASS_MINUTES, new_marker("quiz", seconds=10), minute_seconds=60)
    assert start.before is None and start.change is None


def test_the_writer_stores_markers_without_making_anyone_wait_for_the_database(tmp_path):
    path = tmp_path / "s.sqlite"
    store = SessionStore(f"sqlite:///{path}")
    session_id = store.create_session(title="Locked", source_kind="camera")
    recorder = SessionRecorder(store, session_id, MoodAggregator(minute_seconds=5), flush_seconds=0.2).start()
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    started = time.monotonic()
    recorder.add_marker(quiz := new_marker("quiz", seconds=3))
    assert time.monotonic() - started < 0.1
    wait_until(lambda: recorder.problem, timeout=60)
    blocker.execute("ROLLBACK")
    blocker.close()
    wait_until(lambda: store.markers(session_id), timeout=60)
    assert recorder.finish(wait=60)
    recorder.add_marker(late := new_marker("break", seconds=9))  # after the end: stored at once
    assert [m.id for m in store.markers(session_id)] == [quiz.id, late.id]


def test_cli_lists_and_writes_markers(store, tmp_path):
    history = store.latest().id
    seed_markers(store, history)
    out = run_module("emotion", "sessions", "markers", "--latest").stdout
    assert f"session {history} (History 6a): 3 lesson marker(s)" in out
    assert "3:05  minute 4     quiz — fractions, 5 questions" in out
    run_module("emotion", "sessions", "markers", history, "--csv", tmp_path / "m.csv")
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == ",".join(MARKER_COLUMNS)
    assert lines[2] == f'{history},3:05,185.0,3,quiz,"fractions, 5 questions"'
    assert [m.label for m in parse_markers_csv((tmp_path / "m.csv").read_bytes())] == ["question", "quiz", "break"]
    missing = run_module("emotion", "sessions", "markers", "nosuch", check=False)
    assert missing.returncode == 2 and "no stored session 'nosuch'" in missing.stderr


def page() -> AppTest:
    at = AppTest.from_file(REPO / PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def marker_lines(spec: dict) -> list[tuple[float, str]]:
    """The vertical lines of a Plotly figure and their labels."""
    lines = [shape["x0"] for shape in spec["layout"].get("shapes", [])
             if shape["type"] == "line" and shape["x0"] == shape["x1"]]  # not the alert threshold's line
    labels = [a["text"] for a in spec["layout"].get("annotations", []) if a.get("textangle") == -90
              and a["text"] != "too few faces to tell"]
    return list(zip(lines, labels))


def test_the_sessions_page_draws_markers_on_every_timeline_and_shows_the_mood_around_them(store):
    seed_markers(store, store.latest().id)
    at = page()
    named = " — History 6a · 2024-05-07 09:00 UTC"  # every chart of a session names it, for exported PNGs
    specs = {spec["layout"]["title"]["text"].replace(named, ""): spec for spec in
             (json.loads(c.proto.spec) for c in at.tabs[0].get("plotly_chart"))}
    expected = [(2.25, "question"), (4 + 5 / 60, "quiz: fractions, 5 questions"), (6 + 5 / 60, "break")]
    for title in ("Class mood per minute", "Emotions per minute", "Students per minute"):
        assert [(round(x, 6), text) for x, text in marker_lines(specs[title])] == \
            [(round(x, 6), text) for x, text in expected], title
    assert marker_lines(specs["Whole session (258 faces)"]) == []
    around = next(df.value for df in at.dataframe if "negative before %" in df.value.columns)
    assert around["marker"].tolist() == ["question", "quiz: fractions, 5 questions", "break"]
    assert around.loc[1, ["negative before %", "negative after %", "mix changed %"]].tolist() == \
        pytest.approx([0, 72.5, 72.5], abs=0.6)  # 72.5 % rounded to whole percent
    assert any(title.startswith("Before and after question") for title in specs)


def test_the_analyst_adds_edits_and_deletes_markers(store):
    history = store.latest().id
    at = page()
    key = f"{history}-markers"
    at.text_input(key=f"{key}-new-time").input("12:61")
    at.button(key=f"{key}-add").click().run()
    assert "minutes and seconds go up to 59" in at.error[0].value and store.markers(history) == []
    at.text_input(key=f"{key}-new-time").input("2:30")
    at.selectbox(key=f"{key}-new-label").set_value("quiz")
    at.text_input(key=f"{key}-new-text").input("**bold** <b>")
    at.button(key=f"{key}-add").click().run()
    (quiz,) = store.markers(history)
    assert (quiz.seconds, quiz.label, quiz.text) == (150, "quiz", "**bold** <b>")
    assert "Marker added." in [s.value for s in at.success]
    mood = json.loads(at.tabs[0].get("plotly_chart")[0].proto.spec)
    assert [text for _, text in marker_lines(mood)] == ["quiz: **bold** &lt;b&gt;"]  # escaped for Plotly

    edit = f"{key}-edit-{quiz.id}"
    at.text_input(key=f"{edit}-time").input("3:00")
    at.selectbox(key=f"{edit}-label").set_value("break")
    at.button(key=f"{edit}-save").click().run()
    assert [(m.seconds, m.label) for m in store.markers(history)] == [(180, "break")]
    at.button(key=f"{edit}-delete").click().run()
    assert not at.exception and store.markers(history) == []


def test_the_live_charts_draw_the_markers():
    def live_view():
        from emotion.markers import new_marker
        from tests.sessions import CLASS_MINUTES
        from ui.mood_view import show_mood

        show_mood(CLASS_MINUTES, [], key="live", markers=[new_marker("quiz", seconds=50)], minute_seconds=10,
                  class_only=True)

    at = AppTest.from_function(live_view).run()
    assert not at.exception
    mood, _, faces = (json.loads(c.proto.spec) for c in at.get("plotly_chart"))
    assert marker_lines(mood) == marker_lines(faces) == [(6.0, "quiz")]
    assert "Class-only session" in at.info[0].value


def test_a_video_is_analysed_with_its_markers_csv(stand_in_model, database, tmp_path):
    frames = [gallery_frame(["happy", "sad", "happy"], cols=3, size=(480, 270), seed=i % 3)[0] for i in range(40)]
    video = write_video(tmp_path / "lesson.mp4", frames, fps=4)  # 10 s
    (tmp_path / "bad.csv").write_text("time,label\n0:02,quiz\n0:0x,break\n")
    args = ["emotion", "analyze", video, "--csv", tmp_path / "out.csv", "--weights", stand_in_model,
            "--minute-seconds", "5"]
    bad = run_module(*args, "--markers", tmp_path / "bad.csv", check=False)
    assert bad.returncode == 2 and "bad.csv row 3: '0:0x' is not a time" in bad.stderr
    assert SessionStore(database).list_sessions() == []  # refused before any analysis
    (tmp_path / "lesson.csv").write_text("time,label,text\n0:02,new topic,fractions\n7.5,quiz,\n30,break,\n")
    done = run_module(*args, "--markers", tmp_path / "lesson.csv")
    assert "3 lesson marker(s) stored with the session" in done.stderr
    assert "1 marker(s) lie after the last analysed frame" in done.stderr
    store = SessionStore(database)
    info = store.latest()
    assert [(m.seconds, m.label, m.text) for m in store.markers(info.id)] == [
        (2, "new topic", "fractions"), (7.5, "quiz", ""), (30, "break", "")]


def test_class_only_stores_no_student_row_and_hides_the_per_student_parts(stand_in_model, database, tmp_path,
                                                                         monkeypatch):
    from emotion.classifier import EmotionClassifier
    from emotion.session import ClassSession, SessionSettings

    store = SessionStore(database)
    classifier = EmotionClassifier.load(stand_in_model)
    frame, _ = gallery_frame(["happy", "sad", "happy", "neutral"], cols=4, size=(640, 360))
    for title, class_only in (("Per student", False), ("Class only", True)):
        session = ClassSession(classifier, store, SessionSettings(minute_seconds=5, class_only=class_only),
                               title=title, source_kind="camera", flush_seconds=0.2)
        for i in range(12):
            session.feed(frame, i / 2)
        session.add_marker("quiz")
        assert session.finish(wait=60)
    with sqlite3.connect(database.removeprefix("sqlite:///")) as db:
        rows = dict(db.execute("SELECT s.title, COUNT(sm.track_id) FROM sessions s LEFT JOIN student_minutes sm "
                               "ON sm.session_id = s.id GROUP BY s.title"))
        minutes = dict(db.execute("SELECT s.title, COUNT(*) FROM sessions s JOIN minutes m ON m.session_id = s.id "
                                  "GROUP BY s.title"))
    assert rows["Class only"] == 0 and rows["Per student"] > 0
    assert minutes == {"Class only": 2, "Per student": 2}
    only = next(s for s in store.list_sessions() if s.title == "Class only")
    assert only.class_only and [m.seconds for m in store.markers(only.id)] == [5.5]

    refused = run_module("emotion", "sessions", "export", only.id, "--csv", tmp_path / "o.csv", "--students",
                         tmp_path / "s.csv", check=False)
    assert refused.returncode == 2 and "is class-only" in refused.stderr and not (tmp_path / "s.csv").exists()
    at = page()  # the newest session, class-only, is shown
    assert any("class-only" in c.value and "started" in c.value for c in at.caption)
    assert "Students per minute" not in chart_titles(at)
    assert "Download per-student CSV" not in [b.label for b in at.get("download_button")]

    monkeypatch.setenv("CLASS_MOOD_CLASS_ONLY", "1")  # the school's setting hides every session's student rows
    at = page()
    at.multiselect(key="chosen_sessions").set_value([s.id for s in store.list_sessions() if s.title == "Per student"])
    at.run()
    assert "class-only mode" in at.caption[0].value
    assert "Students per minute" not in chart_titles(at)
    assert "Download per-student CSV" not in [b.label for b in at.get("download_button")]
    assert run_module("emotion", "sessions", "export", "--latest", "--csv", tmp_path / "o.csv", "--students",
                      tmp_path / "s.csv", check=False).returncode == 2


def test_the_schools_setting_makes_every_live_session_class_only(app_env, camera, monkeypatch):  # noqa: F811
    at = _app().run()
    choice = next(box for box in at.sidebar.checkbox if box.label.startswith("Class only"))
    assert not choice.value and not choice.disabled and "pseudonymous student ids" in at.caption[0].value
    monkeypatch.setenv("CLASS_MOOD_CLASS_ONLY", "1")
    at = _app().run()
    choice = next(box for box in at.sidebar.checkbox if box.label.startswith("Class only"))
    assert choice.value and choice.disabled and "class-only mode" in at.caption[0].value


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.tabs[0].get("plotly_chart")]


@requires_chromium
def test_a_marker_added_in_a_live_class_is_drawn_stored_and_outlives_a_killed_server(app_env, database,  # noqa: F811
                                                                                    tmp_path):
    store = SessionStore(database)
    camera = _fake_camera(tmp_path / "camera.y4m", FACES, cols=4)
    with streamlit_process("dashboard.py") as (url, server), chromium(camera) as browser:
        page, _, session = _start_camera(browser, url, store, "Marked class")
        page.get_by_role("button", name="Quiz").click(timeout=30000)
        page.get_by_text("Marked “quiz” at").wait_for(timeout=30000)
        page.locator(".js-plotly-plot").first.get_by_text("quiz").wait_for(timeout=30000)  # on the live chart
        page.get_by_role("textbox", name="Note").fill("group work <b>starts</b>")
        page.get_by_role("button", name="Add note").click()
        wait_until(lambda: len(store.markers(session.id)) == 2, timeout=30)  # the writer stored both
        page.screenshot(path=str(tmp_path / "marked.png"))
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        killed_at = utcnow()
    quiz, note = store.markers(session.id)
    assert (quiz.label, note.label, note.text) == ("quiz", "note", "group work <b>starts</b>")
    info = SessionStore(database, stale_after=timedelta(seconds=0)).get(session.id)
    assert info.status == "interrupted" and 0 < quiz.seconds <= note.seconds <= (
        killed_at - info.started_at).total_seconds()
