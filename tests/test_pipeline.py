"""Each pipeline step on generated frames, then a recorded video end to end through the CLI."""
import threading

import numpy as np
import pandas as pd
import pytest

from emotion.aggregate import MoodAggregator, project_to_simplex, unmix
from emotion.annotate import annotate
from emotion.classifier import EmotionClassifier
from emotion.classify import Classify
from emotion.detect import DetectorSettings, FaceDetector
from emotion.faces import Faces
from emotion.labels import EMOTIONS
from emotion.session_csv import SESSION_COLUMNS
from emotion.track import Tracker, iou_matrix
from tests.conftest import run_module
from tests.synthetic import gallery_frame, write_video

GALLERY = ["happy", "sad", None, "surprise", "angry", "neutral", "happy", "fear", "happy", None,
           "sad", "disgust", "happy", "neutral", "surprise", "angry", "happy", None, "sad", "neutral",
           "happy", "fear", "surprise", "neutral", "happy"]


def matched(expected_boxes, found: Faces, min_iou=0.5):
    scores = iou_matrix(np.asarray(expected_boxes, dtype=float), found.boxes.astype(float))
    return scores.max(axis=1) >= min_iou if scores.size else np.zeros(len(expected_boxes), bool)


def test_detector_finds_every_face_of_a_gallery_and_nothing_in_empty_tiles():
    frame, boxes = gallery_frame(GALLERY)
    faces = FaceDetector()(frame, timestamp=1.5)
    assert matched(boxes, faces).all()
    assert len(faces) == len(boxes) == 22 and faces.timestamp == 1.5 and (faces.track_ids == -1).all()


def test_detector_downscales_big_frames_and_returns_full_size_boxes():
    frame, boxes = gallery_frame(GALLERY[:10], cols=5, size=(1920, 1080), face=180)
    small = FaceDetector(DetectorSettings(max_width=640))(frame)
    assert matched(boxes, small).all()


def test_detector_on_a_frame_without_faces():
    assert len(FaceDetector()(np.full((480, 640, 3), 128, np.uint8))) == 0


def test_missing_cascade_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.xml"):
        FaceDetector(cascade_path=tmp_path / "nothere.xml")


def test_classify_uses_one_batched_call_and_matches_labels(stand_in_model):
    classifier = EmotionClassifier.load(stand_in_model)
    calls = []
    original = classifier._forward
    classifier._forward = lambda x: calls.append(len(x)) or original(x)
    frame, boxes = gallery_frame(GALLERY)
    faces = Classify(classifier)(frame, Faces.from_boxes(boxes, 0.0))
    assert classifier.views == "flip" and calls == [22 * 2]  # the 22 faces and their mirror images, in one call
    shown = [e for e in GALLERY if e]
    assert np.mean([a == b for a, b in zip(faces.top_emotions, shown)]) >= 0.8


def test_tracker_keeps_ids_through_jitter_and_missed_frames():
    tracker = Tracker(max_missing_seconds=2.0)
    boxes = np.array([[100, 100, 80, 80], [400, 100, 80, 80], [700, 100, 80, 80]])
    first = tracker(Faces.from_boxes(boxes, 0.0))
    assert first.track_ids.tolist() == [1, 2, 3]
    moved = tracker(Faces.from_boxes(boxes[[2, 0, 1]] + [6, -5, 0, 0], 0.5))  # shuffled order, jittered
    assert moved.track_ids.tolist() == [3, 1, 2]
    gap = tracker(Faces.from_boxes(boxes[:2], 1.0))  # student 3 looks away
    assert gap.track_ids.tolist() == [1, 2]
    back = tracker(Faces.from_boxes(boxes, 2.5))  # back within 2 s of last seen
    assert back.track_ids.tolist() == [1, 2, 3]
    late = tracker(Faces.from_boxes(boxes[2:] + [0, 300, 0, 0], 10.0))  # everyone gone for long: new id
    assert late.track_ids.tolist() == [4]


def _faces(timestamp, top, track_ids):
    probabilities = np.full((len(top), 7), 0.05, np.float32)
    for i, emotion in enumerate(top):
        probabilities[i, EMOTIONS.index(emotion)] = 0.7
    return (Faces.from_boxes(np.zeros((len(top), 4)), timestamp).with_probabilities(probabilities)
            .with_track_ids(track_ids))


def test_aggregator_minutes_students_and_empty_minutes():
    aggregator = MoodAggregator(minute_seconds=5, method="top")
    aggregator.add(_faces(0.0, ["happy", "happy", "sad", "neutral"], [1, 2, 3, 4]))
    aggregator.add(_faces(4.9, ["happy", "sad", "sad", "neutral"], [1, 2, 3, 4]))
    aggregator.add(_faces(12.0, [], []))  # minute 1 has no frame, minute 2 a frame without faces
    minutes = aggregator.minutes()
    assert [(m.minute, m.frames, m.faces, m.students) for m in minutes] == [(0, 2, 8, 4), (1, 0, 0, 0), (2, 1, 0, 0)]
    assert minutes[0].shares["happy"] == pytest.approx(3 / 8) and minutes[0].shares["sad"] == pytest.approx(3 / 8)
    assert sum(minutes[0].shares.values()) == pytest.approx(1) and minutes[1].shares is None
    assert minutes[0].dominant in ("happy", "sad") and minutes[2].dominant is None
    students = {s.track_id: s for s in aggregator.student_minutes()}
    assert students[2].faces == 2 and students[2].shares["happy"] == pytest.approx(0.5)
    mean = MoodAggregator(5, "mean")
    mean.add(_faces(0.0, ["happy"], [1]))
    assert mean.current().shares["happy"] == pytest.approx(0.7 / 1.0)


def test_corrected_aggregation_undoes_known_confusion():
    confusion = np.eye(7) * 80 + 20 / 6 * (1 - np.eye(7))  # 80 % right, errors spread evenly
    true_mix = np.array([0, 0, 0, 0.6, 0.4, 0, 0])
    observed = (confusion / confusion.sum(1, keepdims=True)).T @ true_mix
    np.testing.assert_allclose(unmix(observed, confusion), true_mix, atol=1e-3)
    assert project_to_simplex(np.array([2.0, -1.0, 0.5])).sum() == pytest.approx(1)


def test_aggregator_is_thread_safe():
    aggregator = MoodAggregator(minute_seconds=60, method="top")
    threads = [threading.Thread(target=lambda: [aggregator.add(_faces(1.0, ["happy"], [1])) for _ in range(500)])
               for _ in range(4)]
    [t.start() for t in threads]
    while any(t.is_alive() for t in threads):
        aggregator.minutes()  # readers run while writers write
    [t.join() for t in threads]
    assert aggregator.current().frames == 2000 and aggregator.current().faces == 2000


def test_annotate_draws_boxes_and_labels_on_a_copy():
    frame = np.full((200, 300, 3), 100, np.uint8)
    faces = _faces(0, ["happy"], [7])
    faces = Faces(np.array([[50, 60, 80, 80]]), faces.probabilities, faces.track_ids, 0)
    out = annotate(frame, faces)
    assert (frame == 100).all() and out.shape == frame.shape
    assert (out[60:140, 50] != 100).any() and (out[40:60, 50:130] != 100).any()  # box edge and label band
    blurred = annotate(np.random.default_rng(0).integers(0, 255, (200, 300, 3), dtype=np.uint8), faces, blur_faces=True)
    assert blurred[70:130, 60:120].std() < 40


def test_recorded_video_gives_the_known_per_minute_mood(stand_in_model, tmp_path, database):
    """A 3-"minute" video (6 s minutes): all happy, then all sad, then nobody."""
    happy, _ = gallery_frame(["happy"] * 10, cols=5)
    sad, _ = gallery_frame(["sad"] * 10, cols=5)
    empty, _ = gallery_frame([None] * 10, cols=5)
    video = write_video(tmp_path / "class.mp4", [happy] * 24 + [sad] * 24 + [empty] * 24, fps=4)
    out = tmp_path / "session.csv"
    students = tmp_path / "students.csv"
    result = run_module("emotion", "analyze", video, "--csv", out, "--students", students,
                        "--weights", stand_in_model, "--minute-seconds", "6", "--every", "2", "--coast-seconds", "0",
                        "--aggregation", "top")
    table = pd.read_csv(out)
    assert list(table.columns) == SESSION_COLUMNS
    assert table["minute"].tolist() == [0, 1, 2] and table["frames"].tolist() == [12, 12, 12]
    assert table["faces"].tolist()[:2] == [120, 120] and table["faces"][2] == 0
    assert table["students"].tolist()[:2] == [10, 10]
    assert table["dominant"].tolist()[:2] == ["happy", "sad"] and pd.isna(table["dominant"][2])
    assert table.loc[0, "happy"] > 0.7 and table.loc[1, "sad"] > 0.7
    assert table.loc[2, list(EMOTIONS)].isna().all()
    np.testing.assert_allclose(table.loc[:1, list(EMOTIONS)].sum(axis=1), 1, atol=1e-4)
    assert len(pd.read_csv(students)) == 20
    assert "session " in result.stderr and "frames/s" in result.stderr
    listed = run_module("emotion", "sessions", "list").stdout
    assert "class" in listed and "ended" in listed


def test_video_without_faces_and_broken_video(stand_in_model, tmp_path, database):
    empty, _ = gallery_frame([None] * 4, cols=2)
    video = write_video(tmp_path / "empty.mp4", [empty] * 8)
    result = run_module("emotion", "analyze", video, "--csv", tmp_path / "o.csv", "--weights", stand_in_model)
    assert "no faces were found" in result.stderr
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 1000)
    bad = run_module("emotion", "analyze", broken, "--csv", tmp_path / "b.csv", "--weights", stand_in_model,
                     check=False)
    assert bad.returncode == 2 and "broken.mp4" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "b.csv").exists()


def test_truncated_video_is_analysed_as_far_as_it_goes_with_a_warning(stand_in_model, tmp_path, database):
    frames = [gallery_frame(["happy", "sad"], cols=2, seed=i % 3)[0] for i in range(80)]  # 20 s at 4 fps
    whole = write_video(tmp_path / "whole.mkv", frames).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole[: len(whole) // 2])
    result = run_module("emotion", "analyze", cut, "--csv", tmp_path / "cut.csv", "--weights", stand_in_model,
                        "--minute-seconds", "5")
    assert "could only be read up to" in result.stderr and "of its 20 s" in result.stderr
    rows = pd.read_csv(tmp_path / "cut.csv")
    assert 1 <= len(rows) < 4 and rows["faces"].sum() > 0
    full = run_module("emotion", "analyze", tmp_path / "whole.mkv", "--csv", tmp_path / "whole.csv",
                      "--weights", stand_in_model, "--minute-seconds", "5")
    assert "could only be read" not in full.stderr and len(pd.read_csv(tmp_path / "whole.csv")) == 4


def test_tracker_coasts_briefly_missed_students_but_not_one_off_detections():
    tracker = Tracker(coast_seconds=1.0)
    student, glitch = [100, 100, 80, 80], [600, 300, 40, 40]
    tracker(Faces.from_boxes([student], 0.0))
    tracker(Faces.from_boxes([student, glitch], 0.25))  # student seen twice, glitch once
    missed = tracker(Faces.from_boxes([], 0.5))
    assert missed.boxes.tolist() == [student] and missed.track_ids.tolist() == [1]
    assert len(tracker(Faces.from_boxes([], 1.5))) == 0  # coasting ends after 1 s
