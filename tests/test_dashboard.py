"""The teacher's dashboard: the live session object, the page under AppTest, and a real browser with a fake camera."""
import os
import signal
import threading
import time
from datetime import timedelta

import numpy as np
import pytest

from emotion.classifier import EmotionClassifier
from emotion.live import LiveSession
from emotion.session import SessionSettings
from emotion.store import SessionStore, utcnow
from tests.browser import (REPO, chromium, launch_chromium, requires_chromium, streamlit_process,
                           streamlit_server)
from tests.synthetic import gallery_frame, write_audio_only, write_video, write_y4m
from ui.common import PRIVACY_ACKNOWLEDGED

FACES = ["happy", "sad", "happy", "surprise", "happy", "neutral", "happy", "angry"]


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def live(stand_in_model, tmp_path):
    store = SessionStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    clock = FakeClock()
    session = LiveSession(EmotionClassifier.load(stand_in_model), store,
                          SessionSettings(analysis_fps=2, minute_seconds=5), title="Maths 4B", source_kind="camera",
                          clock=clock)
    return session, store, clock


def test_live_session_throttles_analysis_and_stores_minutes(live):
    session, store, clock = live
    frame, _ = gallery_frame(FACES, cols=4)
    for i in range(60):  # 6 s of a 10 fps camera
        clock.now = i / 10
        out = session.process(frame)
        assert out.shape == frame.shape
    status = session.status()
    assert status.frames_received == 60 and status.frames_analysed == 12  # 2 per second
    assert (out != frame).any()  # annotations drawn on frames that were not analysed too
    session.finish()
    info = store.get(status.session_id)
    minutes = store.minutes(info.id)
    assert info.status == "ended" and info.title == "Maths 4B"
    assert [m.frames for m in minutes] == [10, 2] and minutes[0].faces == 80 and minutes[0].students == 8
    assert minutes[0].dominant == "happy"
    assert session.process(frame) is frame  # after the end, frames pass through untouched


def test_busy_pipeline_drops_frames_instead_of_queueing(live):
    session, _, clock = live
    frame, _ = gallery_frame(FACES, cols=4)
    session.process(frame)  # warm up the model
    clock.now = 10.0
    session._busy.acquire()  # another thread is analysing
    try:
        started = time.perf_counter()
        for _ in range(20):
            session.process(frame)
        assert time.perf_counter() - started < 1.0  # returned at once, nothing queued
        assert session.status().frames_analysed == 1
    finally:
        session._busy.release()
    session.process(frame)
    assert session.status().frames_analysed == 2


def test_frames_from_several_threads(live):
    session, _, clock = live
    frame, _ = gallery_frame(FACES[:4], cols=2)
    errors = []

    def feed():
        try:
            for _ in range(30):
                clock.now += 0.05
                session.process(frame)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=feed) for _ in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors and session.status().frames_received == 90


# ---- the page under AppTest (streamlit-webrtc cannot run there: its component is replaced)
@pytest.fixture
def app_env(stand_in_model, model_dir, database):
    (model_dir / "small.keras").write_bytes(stand_in_model.read_bytes())
    (model_dir / "small.json").write_bytes(stand_in_model.with_suffix(".json").read_bytes())
    (model_dir / "active.txt").write_text("small.keras")
    return model_dir


def _app():
    """The dashboard under AppTest (with the `camera` fixture), past the privacy notice."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "dashboard.py"), default_timeout=90)
    at.session_state[PRIVACY_ACKNOWLEDGED] = True  # the notice itself: tests/test_auth_pages.py
    return at


def test_dashboard_camera_off_and_on(app_env, camera):
    at = _app().run()
    assert not at.exception
    assert any("camera is off" in i.value for i in at.info)
    assert any("validation accuracy" in c.value for c in at.sidebar.caption)
    assert any("stores no images or video" in c.value for c in at.caption)
    camera.state.playing = True
    at = _app().run()
    assert not at.exception and "camera" in at.session_state


def test_dashboard_with_a_missing_model_says_so(model_dir, database, monkeypatch, camera):
    (model_dir / "active.txt").write_text("gone.keras")
    monkeypatch.setattr("emotion.registry.SHIPPED_MODEL", model_dir / "missing.keras")
    at = _app().run()
    assert not at.exception
    assert any("model file not found" in e.value and "missing.keras" in e.value for e in at.error)


def test_dashboard_screen_source_without_a_display(app_env, monkeypatch, camera):
    monkeypatch.delenv("DISPLAY", raising=False)
    at = _app().run()
    at.sidebar.radio[0].set_value("Call window (this computer)").run()
    assert not at.exception
    assert any("Screen capture is not available" in e.value for e in at.error)


# ---- a real browser, a fake camera, streamlit-webrtc over loopback
def _fake_camera(path, emotions, cols):
    """A .y4m Chromium plays as its webcam: a small gallery of drawn faces, slightly varied."""
    frames = []
    for seed in range(3):
        frame, _ = gallery_frame(emotions, cols=cols, size=(640, 480), face=90, seed=seed)
        frames += [frame] * 10
    camera = write_y4m(path, frames, fps=10)
    return ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={camera}", "--allow-loopback-in-peer-connection"]


def _start_camera(browser, url, store, title):
    """Open the dashboard, name the class, press START; retry when streamlit-webrtc's component does not
    render or stalls right after START (a known 2-7 % flake). Returns the page and the stored session once
    it holds faces."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    context = browser.new_context()
    context.grant_permissions(["camera"], origin=url)
    page = context.new_page()
    for _ in range(3):
        page.goto(url)
        page.get_by_role("button", name="I have told the class: continue").click(timeout=60000)
        page.get_by_role("textbox", name="Class name").fill(title)
        page.get_by_role("textbox", name="Class name").press("Enter")
        component = page.frame_locator('iframe[title="streamlit_webrtc.component.webrtc_streamer"]')
        try:
            component.get_by_role("button", name="Start").click(timeout=60000)
        except PlaywrightTimeoutError:
            continue  # the component never rendered: reload the page
        deadline = time.time() + 45
        while time.time() < deadline:
            mine = [s for s in store.list_sessions() if s.title == title and s.status == "live"]
            if mine and any(m.faces for m in store.minutes(mine[0].id)):
                return page, component, mine[0]
            time.sleep(1)
    raise AssertionError(f"no faces stored for {title!r} after 3 tries")


def _stop_and_wait(component, store, session_id):
    component.get_by_role("button", name="Stop").click()
    deadline = time.time() + 20
    while store.get(session_id).status != "ended" and time.time() < deadline:
        time.sleep(0.5)
    return store.get(session_id)


@requires_chromium
def test_browser_camera_session_is_stored(app_env, database, tmp_path):
    camera = _fake_camera(tmp_path / "camera.y4m", FACES, cols=4)
    with streamlit_server("dashboard.py") as url, chromium(camera) as browser:
        store = SessionStore(database)
        page, component, session = _start_camera(browser, url, store, "Maths 4B")
        page.wait_for_selector("text=frames analysed", timeout=30000)
        page.screenshot(path=str(tmp_path / "dashboard.png"))
        assert _stop_and_wait(component, store, session.id).status == "ended"
    minutes = store.minutes(session.id)
    assert session.source_kind == "camera"
    assert minutes and minutes[0].faces > 0 and minutes[0].students >= 4
    assert abs(sum(minutes[0].shares.values()) - 1) < 1e-6


@requires_chromium
def test_two_classes_streaming_at_once_stay_apart(app_env, database, tmp_path):
    """Two browsers, two fake cameras (4 happy faces / 6 sad faces), one server: two sessions, no mixing."""
    from playwright.sync_api import sync_playwright

    store = SessionStore(database)
    happy = _fake_camera(tmp_path / "happy.y4m", ["happy"] * 4, cols=2)
    sad = _fake_camera(tmp_path / "sad.y4m", ["sad"] * 6, cols=3)
    with streamlit_server("dashboard.py") as url, sync_playwright() as playwright:
        first, second = launch_chromium(playwright, happy), launch_chromium(playwright, sad)
        _, happy_camera, happy_session = _start_camera(first, url, store, "Class A")
        _, sad_camera, sad_session = _start_camera(second, url, store, "Class B")
        time.sleep(10)  # both stream at once
        happy_session = _stop_and_wait(happy_camera, store, happy_session.id)
        sad_session = _stop_and_wait(sad_camera, store, sad_session.id)
    assert happy_session.id != sad_session.id and happy_session.status == sad_session.status == "ended"
    for session, faces, emotion in ((happy_session, 4, "happy"), (sad_session, 6, "sad")):
        minutes = store.minutes(session.id)
        frames = sum(m.frames for m in minutes)
        assert sum(m.faces for m in minutes) / frames == pytest.approx(faces, abs=0.5)
        assert max(m.students for m in minutes) == faces
        assert all(m.dominant == emotion for m in minutes if m.faces)
        seconds = (session.ended_at - session.started_at).total_seconds()
        print(f"{session.title}: {frames} frames analysed in {seconds:.0f} s ({frames / seconds:.1f} frames/s)")


@requires_chromium
def test_killing_the_server_mid_class_loses_only_the_last_seconds(app_env, store, tmp_path):
    before = _stored(store)
    camera = _fake_camera(tmp_path / "camera.y4m", FACES, cols=4)
    with streamlit_process("dashboard.py") as (url, server), chromium(camera) as browser:
        _, _, session = _start_camera(browser, url, store, "Killed class")
        time.sleep(8)  # a few recorder flushes (every 3 s)
        os.killpg(server.pid, signal.SIGKILL)  # no chance to finish the session
        server.wait(timeout=30)
        killed_at = utcnow()
    info = store.get(session.id)
    unsaved = (killed_at - info.last_write_at).total_seconds()
    print(f"the last write was {unsaved:.1f} s before the kill")
    assert unsaved < 5 and info.ended_at is None
    minutes = store.minutes(session.id)
    frames = sum(m.frames for m in minutes)
    # the camera's frames reach the server through WebRTC's video codec: now and then a blurred face is not
    # confirmed by the tile search and is left out of that frame (measured 7.1 of 8 once under heavy load)
    assert frames >= 8 and sum(m.faces for m in minutes) / frames == pytest.approx(len(FACES), abs=1.0)
    assert SessionStore(store.url, stale_after=timedelta(seconds=0)).get(session.id).status == "interrupted"
    assert [entry for entry in _stored(store) if entry[0].id != session.id] == before


def test_live_status_tells_how_long_no_frame_has_arrived(live):
    session, _, clock = live
    clock.now = 7.0
    status = session.status()
    assert status.frames_received == 0 and status.waiting == 7.0 and status.session_id is None


def _stored(store):
    """Everything the store holds, to compare before and after."""
    return [(s, store.minutes(s.id), store.student_minutes(s.id)) for s in store.list_sessions()]


@requires_chromium
def test_broken_uploads_get_a_clear_message_and_change_nothing(app_env, store, tmp_path, monkeypatch):
    monkeypatch.setenv("CLASS_MOOD_MAX_UPLOAD_MB", "1")
    frames = [gallery_frame(["happy", "sad"], cols=2, seed=i % 3)[0] for i in range(40)]
    whole = write_video(tmp_path / "whole.mp4", frames).read_bytes()
    uploads = [  # (file, what the page must say)
        (tmp_path / "empty.mp4", b"", "empty.mp4 is empty (0 bytes)"),
        (tmp_path / "noise.mp4", np.random.default_rng(0).bytes(50_000), "noise.mp4 is not a video PyAV can read"),
        (tmp_path / "half.mp4", whole[: len(whole) // 2], "half.mp4 is not a video PyAV can read"),
        (write_audio_only(tmp_path / "sound.mp4"), None, "sound.mp4 has no video stream"),
        (tmp_path / "big.mp4", whole + bytes(1_100_000), "File must be 1.0MB or smaller"),
    ]
    before = _stored(store)
    with streamlit_server("dashboard.py") as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        page.get_by_role("button", name="I have told the class: continue").click(timeout=60000)
        page.get_by_text("Recorded video").click()
        for path, content, message in uploads:
            if content is not None:
                path.write_bytes(content)
            page.set_input_files('[data-testid="stFileUploaderDropzoneInput"]', str(path))
            page.get_by_text(message).first.wait_for(timeout=60000)  # said on upload, before any "Analyse"
            assert page.locator('[data-testid="stException"]').count() == 0, path.name
            assert page.get_by_role("button", name="Analyse video").count() == 0, path.name
        assert _stored(store) == before
        matroska = write_video(tmp_path / "whole.mkv", frames * 2).read_bytes()  # 20 s
        cut = tmp_path / "cut.mkv"  # a Matroska file cut in half still plays up to the cut
        cut.write_bytes(matroska[: len(matroska) // 2])
        page.set_input_files('[data-testid="stFileUploaderDropzoneInput"]', str(cut))
        page.get_by_text("cut.mkv: 20 s, 1280×720").wait_for(timeout=60000)
        page.get_by_role("button", name="Analyse video").click()
        page.get_by_text("Only part of this video was analysed").wait_for(timeout=120000)
        page.get_by_text("Saved as session").wait_for(timeout=60000)
    added = [s for s in store.list_sessions() if s.id not in {b[0].id for b in before}]
    assert [(s.source_name, s.status) for s in added] == [("cut.mkv", "ended")]
