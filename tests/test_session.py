"""One path for every session (emotion/session.py): settings checked, crafted timestamps bounded, storage on
a background writer that survives a locked database, recorded videos written as they go, background jobs."""
from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from emotion.aggregate import MoodAggregator
from emotion.classifier import EmotionClassifier
from emotion.faces import Faces
from emotion.session import ClassSession, SessionSettings
from emotion.store import SessionStore
from emotion.video import MAX_GAP_SECONDS, VideoError, read_frames
from tests.conftest import REPO, run_module, wait_until
from tests.synthetic import gallery_frame, write_video


def write_stamped_video(path, seconds: list[float], size=(64, 48)):
    """A Matroska file whose frames carry exactly the given timestamps (milliseconds time base)."""
    import av

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for i, t in enumerate(seconds):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 40 * i % 255, np.uint8), format="bgr24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("values, message", [
    ({"analysis_fps": -1}, "analysis_fps must be between"),
    ({"analysis_fps": float("nan")}, "analysis_fps must be between"),
    ({"minute_seconds": 0}, "minute_seconds must be between 5 and 3600"),
    ({"every": 1.5}, "every must be a whole number"),
    ({"detect_every": 0}, "detect_every must be between 1"),
    ({"aggregation": "median"}, "aggregation must be one of"),
])
def test_session_settings_refuse_values_that_cannot_work(values, message):
    with pytest.raises(ValueError, match=message):
        SessionSettings(**values)


@pytest.mark.parametrize("flags, message", [
    (["--fps", "-4"], "argument --fps: must be more than 0"),
    (["--fps", "inf"], "argument --fps: 'inf' is not a finite number"),
    (["--minute-seconds", "0"], "argument --minute-seconds: must be more than 0"),
    (["--minute-seconds", "1"], "minute_seconds must be between 5 and 3600"),
    (["--every", "-2"], "argument --every: must be a whole number of at least 0"),
    (["--detect-every", "x"], "argument --detect-every: 'x' is not a whole number"),
])
def test_analyze_rejects_bad_numbers_with_a_message(tmp_path, flags, message):
    video = write_video(tmp_path / "v.mp4", [gallery_frame(["happy"], cols=1, size=(320, 240))[0]] * 4)
    started = time.monotonic()
    result = run_module("emotion", "analyze", video, "--csv", tmp_path / "o.csv", "--no-store", *flags,
                        check=False, timeout=120)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60 and not (tmp_path / "o.csv").exists()


def test_a_frame_stamped_a_billion_seconds_later_is_refused_quickly(tmp_path, stand_in_model, database):
    """The crafted 2-frame file of issue 16: it used to keep `analyze` busy for many minutes."""
    video = write_stamped_video(tmp_path / "crafted.mkv", [0.0, 1e9])
    started = time.monotonic()
    result = run_module("emotion", "analyze", video, "--csv", tmp_path / "o.csv", "--weights", stand_in_model,
                        "--minute-seconds", "5", check=False, timeout=300)
    assert time.monotonic() - started < 120
    assert result.returncode == 2 and "frame times jump from 0.0 s to 1e+09 s" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(pd.read_csv(tmp_path / "o.csv")) == 1  # the part before the jump, not 10^9 / 5 empty minutes
    (info,) = SessionStore(database).list_sessions()
    assert info.status == "interrupted"


def test_reader_bounds_fps_slots_by_the_frames_that_exist(tmp_path):
    video = write_stamped_video(tmp_path / "gap.mkv", [0.0, 0.25, 200.0, 200.25])  # a long but allowed gap
    started = time.monotonic()
    assert [round(t, 2) for t, _ in read_frames(video, fps=30)] == [0.0, 0.25, 200.0, 200.25]
    assert time.monotonic() - started < 10
    assert [round(t, 2) for t, _ in read_frames(video, fps=0.5)] == [0.0, 200.0]
    with pytest.raises(ValueError, match="fps must be a positive number"):
        next(read_frames(video, fps=-1))


@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(times=st.lists(st.integers(0, 2 * 10**12), min_size=1, max_size=6, unique=True),  # milliseconds
       fps=st.floats(0.1, 30), minute_seconds=st.floats(5, 3600))
def test_fuzzed_timestamps_never_make_unbounded_work(tmp_path_factory, times, fps, minute_seconds):
    """Whatever a file's timestamps, reading ends with frames within the gap and length bounds or a
    VideoError, and the minutes charted stay bounded by the video's length."""
    video = write_stamped_video(tmp_path_factory.mktemp("fuzz") / "v.mkv", [t / 1000 for t in sorted(times)])
    aggregator = MoodAggregator(minute_seconds)
    previous = None
    try:
        for seconds, frame in read_frames(video, fps=fps):
            assert frame.shape == (48, 64, 3)
            assert previous is None or 0 <= seconds - previous <= MAX_GAP_SECONDS
            previous = seconds
            aggregator.add(Faces(timestamp=seconds))
    except VideoError as exc:
        assert "frame times jump" in str(exc) or "runs past" in str(exc) or "no frame" in str(exc)
    assert len(aggregator.minutes()) <= 12 * 3600 / minute_seconds + 1


def test_a_locked_database_never_stops_the_video_and_loses_nothing(stand_in_model, tmp_path):
    """Another connection holds SQLite's write lock for longer than the busy timeout from the very first frame:
    frames are analysed on time meanwhile, and every minute is stored once the lock goes."""
    path = tmp_path / "s.sqlite"
    store = SessionStore(f"sqlite:///{path}")
    store.engine.dispose()
    blocker = sqlite3.connect(path, timeout=0, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # what a large CSV import did
    session = ClassSession(EmotionClassifier.load(stand_in_model), store, SessionSettings(minute_seconds=5),
                           title="Locked", source_kind="camera", flush_seconds=0.2)
    frame, _ = gallery_frame(["happy", "sad", "neutral"], cols=3, size=(640, 360))
    started = time.monotonic()
    for i in range(20):  # 10 s of class at 2 frames/s
        faces = session.feed(frame, i / 2)
        assert len(faces) == 3
    assert time.monotonic() - started < 15  # never waited on the lock (the busy timeout alone is 15 s)
    wait_until(lambda: session.storage_problem, timeout=60)
    assert "database is locked" in session.storage_problem
    blocker.execute("ROLLBACK")
    blocker.close()
    assert session.finish(wait=60)
    info = store.get(session.session_id)
    assert info.status == "ended" and info.title == "Locked"
    assert [m.frames for m in store.minutes(info.id)] == [10, 10]
    assert session.storage_problem is None


ANALYZE_SLOWLY = """
import sys, time
import emotion.session
feed = emotion.session.ClassSession.feed
def slow_feed(self, frame, seconds):  # a long class analysed at a pace the test can kill it in the middle of
    time.sleep(0.05)
    return feed(self, frame, seconds)
emotion.session.ClassSession.feed = slow_feed
from emotion.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_a_killed_analysis_keeps_what_it_had_and_shows_as_interrupted(stand_in_model, tmp_path, database):
    frames = (gallery_frame(["happy", "sad"], cols=2, size=(320, 240), seed=i % 3)[0] for i in range(400))
    video = write_video(tmp_path / "long.mp4", frames, fps=4)  # 100 s
    analysis = subprocess.Popen([sys.executable, "-c", ANALYZE_SLOWLY, "analyze", str(video), "--csv",
                                 str(tmp_path / "o.csv"), "--weights", str(stand_in_model), "--minute-seconds", "10",
                                 "--fps", "4"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = SessionStore(database, stale_after=timedelta(seconds=1))
    try:
        wait_until(lambda: store.list_sessions() and sum(m.frames for m in store.minutes(
            store.latest().id)) >= 40, timeout=240)
    finally:
        analysis.send_signal(signal.SIGKILL)
        analysis.wait(timeout=30)
    time.sleep(1.5)
    info = store.latest()
    minutes = store.minutes(info.id)
    assert info.status == "interrupted" and info.source_kind == "video" and info.source_name == "long.mp4"
    assert 40 <= sum(m.frames for m in minutes) < 400 and all(m.faces == 2 * m.frames for m in minutes)
    assert info.settings["minute_seconds"] == 10 and info.settings["model"] == "best.keras"


def test_every_source_stores_the_same_settings_shape(stand_in_model, tmp_path):
    from emotion.analyze import analyze_video
    from emotion.live import LiveSession

    store = SessionStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    classifier = EmotionClassifier.load(stand_in_model)
    settings = SessionSettings(minute_seconds=5)
    frame, _ = gallery_frame(["happy"], cols=1, size=(320, 240))
    live = LiveSession(classifier, store, settings, title="Live", source_kind="camera", owner="tina")
    live.process(frame)
    live.finish()
    video = analyze_video(write_video(tmp_path / "v.mp4", [frame] * 8), classifier, settings, store=store,
                          title="Video", owner="tina")
    stored = {info.title: info for info in store.list_sessions()}
    assert stored["Live"].settings == stored["Video"].settings == settings.stored(classifier)
    assert stored["Live"].owner == stored["Video"].owner == "tina"
    assert video.stored and stored["Video"].status == "ended"


def test_background_job_reports_progress_can_be_cancelled_and_keeps_its_part(stand_in_model, tmp_path):
    from emotion.jobs import VideoJobs

    store = SessionStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    frames = [gallery_frame(["happy", "sad"], cols=2, size=(320, 240), seed=i % 3)[0] for i in range(240)]
    jobs = VideoJobs()
    video = write_video(tmp_path / "upload.mp4", frames, fps=4)  # 60 s
    job = jobs.start(video, EmotionClassifier.load(stand_in_model), SessionSettings(minute_seconds=10), store=store,
                     title="Upload", owner="tina", file_name="class.mp4")
    wait_until(lambda: job.progress[0] >= 5, timeout=120)
    assert job.running and job.fraction is not None and jobs.of("tina") == [job] and jobs.of("ann") == []
    job.cancel()
    wait_until(lambda: not job.running, timeout=120)
    assert job.status == "cancelled" and "what it had is kept" in job.message
    assert not video.exists()  # the upload is gone; only numbers stay
    info = store.get(job.session_id)
    assert info.status == "interrupted" and info.source_name == "class.mp4"
    assert 0 < sum(m.frames for m in store.minutes(info.id)) < 120
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    failed = jobs.start(broken, EmotionClassifier.load(stand_in_model), SessionSettings(), store=store, title="Bad",
                        owner="tina", file_name="broken.mp4")
    wait_until(lambda: not failed.running, timeout=60)
    assert failed.status == "failed" and failed.message.startswith("This video cannot be analysed")
    assert not broken.exists() and len(store.list_sessions()) == 1


def test_intervals_columns_from_analyze_and_export_and_the_default_header_unchanged(stand_in_model, tmp_path,
                                                                                     database):
    from emotion.session_csv import SESSION_COLUMNS, SESSION_INTERVAL_COLUMNS

    frames = [gallery_frame(["happy", "sad", "happy", "neutral"], cols=2, size=(480, 360), seed=i % 3)[0]
              for i in range(40)]
    video = write_video(tmp_path / "v.mp4", frames, fps=4)
    run_module("emotion", "analyze", video, "--csv", tmp_path / "plain.csv", "--weights", stand_in_model,
               "--minute-seconds", "5")
    run_module("emotion", "analyze", video, "--csv", tmp_path / "wide.csv", "--weights", stand_in_model,
               "--minute-seconds", "5", "--intervals")
    assert list(pd.read_csv(tmp_path / "plain.csv").columns) == SESSION_COLUMNS
    wide = pd.read_csv(tmp_path / "wide.csv")
    assert list(wide.columns) == SESSION_INTERVAL_COLUMNS and SESSION_INTERVAL_COLUMNS[:14] == SESSION_COLUMNS
    run_module("emotion", "sessions", "export", "--latest", "--csv", tmp_path / "export.csv", "--intervals")
    exported = pd.read_csv(tmp_path / "export.csv")
    assert list(exported.columns) == SESSION_INTERVAL_COLUMNS  # the stored minutes keep their intervals
    with_faces = exported[exported["faces"] > 0]
    assert len(with_faces) and (with_faces["happy_low"] <= with_faces["happy"] + 1e-6).all()
    assert (with_faces["happy"] <= with_faces["happy_high"] + 1e-6).all()
