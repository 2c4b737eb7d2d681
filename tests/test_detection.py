"""Gallery-aware detection, keeping students' boxes, and boxes that lose their face, on generated frames."""
import cv2
import numpy as np

from emotion.aggregate import MoodAggregator
from emotion.detect import DetectorSettings, FaceDetector
from emotion.faces import Faces
from emotion.labels import EMOTIONS
from emotion.pipeline import FramePipeline
from emotion.preprocess import to_gray
from emotion.tile_layout import find_tiles
from emotion.track import Tracker
from tests.synthetic import classroom_frame, draw_face, gallery_frame, speaker_frame
from tests.test_pipeline import GALLERY, matched

MOODS = ["happy", "sad", "neutral", "surprise", "angry", "fear"]


def named_camera_off(frame, emotions, cols=5):
    """Write a name into each camera-off tile, as call apps do."""
    rows = -(-len(emotions) // cols)
    tile_w, tile_h = frame.shape[1] // cols, frame.shape[0] // rows
    for i, emotion in enumerate(emotions):
        if emotion is None:
            x, y = (i % cols) * tile_w, (i // cols) * tile_h
            cv2.putText(frame, f"Student {i + 1:02d}", (x + 40, y + tile_h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                        (230, 230, 230), 1, cv2.LINE_AA)
    return frame


class CountingCascade:
    """Counts full cascade runs of a detector."""

    def __init__(self, cascade, calls):
        self.cascade, self.calls = cascade, calls

    def detectMultiScale(self, *args, **kwargs):
        self.calls.append(1)
        return self.cascade.detectMultiScale(*args, **kwargs)


def counting(detector):
    calls = []
    detector.cascades = [CountingCascade(c, calls) for c in detector.cascades]
    return calls


class UniformClassifier:
    """Stands in for the network: every crop gets the same probabilities."""

    def predict(self, crops):
        return np.full((len(crops), len(EMOTIONS)), 1 / len(EMOTIONS), np.float32)


def test_tiles_of_a_gallery_hold_its_faces_and_a_room_is_not_a_gallery():
    frame, boxes = gallery_frame(GALLERY)
    layout = find_tiles(to_gray(frame))
    assert layout is not None and len(layout.tiles) == len(boxes) == 22  # empty tiles hold nothing to search
    for x, y, w, h in boxes:
        assert any(tx <= x and ty <= y and x + w <= tx + tw and y + h <= ty + th for tx, ty, tw, th in layout.tiles)
    assert layout.still_holds(to_gray(frame))
    assert not layout.still_holds(to_gray(gallery_frame(GALLERY[:16], cols=4)[0]))  # re-flowed to 4 columns
    assert find_tiles(to_gray(classroom_frame(MOODS)[0])) is None
    assert find_tiles(np.full((480, 640), 90, np.uint8)) is None


def test_a_1080p_gallery_of_36_tiles_is_searched_per_tile_at_a_scale_from_the_tile():
    emotions = (MOODS[:5] + [None]) * 6
    frame, boxes = gallery_frame(emotions, cols=6, size=(1920, 1080), face=56)
    named_camera_off(frame, emotions, cols=6)
    faces = FaceDetector()(frame)
    assert matched(boxes, faces).all() and len(faces) == len(boxes) == 30
    shrunk = FaceDetector(DetectorSettings(tiles=False, max_width=640))(frame)  # whole, shrunk: 19 px faces
    assert len(shrunk) < len(boxes) // 4


def test_camera_off_tiles_and_empty_frames_give_no_faces():
    emotions = [None if i % 3 else MOODS[i % 6] for i in range(25)]
    frame, boxes = gallery_frame(emotions)
    named_camera_off(frame, emotions)
    detector = FaceDetector()
    for t in (0.0, 0.5, 1.5, 3.0):  # camera-off tiles are searched again every search_seconds
        faces = detector(frame, t)
        assert len(faces) == len(boxes) and matched(boxes, faces).all()
    assert len(FaceDetector()(np.full((720, 1280, 3), 40, np.uint8))) == 0


def test_a_camera_off_tile_costs_no_cascade_run():
    emotions = ["happy"] + [None] * 24
    frame, boxes = gallery_frame(emotions)
    named_camera_off(frame, emotions)
    detector = FaceDetector()
    calls = counting(detector)
    faces = detector(frame, 0.0)
    assert detector.layout is not None and len(detector.layout.tiles) == 25
    assert len(faces) == 1 and matched(boxes, faces).all()
    assert len(calls) <= 2  # the one face's tile (first cascade, maybe the second); the 24 names none


def test_kept_boxes_are_only_verified_until_the_next_search():
    detector = FaceDetector()
    calls = counting(detector)
    frames = [gallery_frame(GALLERY, seed=i)[0] for i in range(3)]  # noise and shading vary, the tiles stay
    first = detector(frames[0], 0.0)
    searched = len(calls)
    assert searched >= len(first) == 22
    second = detector(frames[1], 0.25)
    assert len(calls) == searched  # no cascade run: every face was found again by its look
    assert matched(first.boxes, second).all() and len(second) == 22
    detector(frames[2], 0.25 + detector.settings.search_seconds)
    assert len(calls) == searched  # the layout is checked again; kept faces need no search


def test_a_new_layout_is_searched_at_once():
    detector = FaceDetector()
    detector(gallery_frame(GALLERY)[0], 0.0)
    reflowed, boxes = gallery_frame(["happy", "sad", "neutral", "surprise"] * 4, cols=4)  # people left: 4x4
    faces = detector(reflowed, 0.25)
    assert matched(boxes, faces).all() and len(faces) == 16


def test_speaker_view_finds_the_speaker_and_the_strip():
    frame, boxes = speaker_frame("happy", ["sad", None, "neutral", "angry", "surprise"])
    detector = FaceDetector()
    faces = detector(frame, 0.0)
    assert matched(boxes, faces).all() and len(faces) == 5
    assert matched(boxes, detector(frame, 0.25)).all()


def test_one_classroom_camera_is_searched_whole_and_faces_are_kept():
    frame, boxes = classroom_frame(MOODS + ["happy", "sad"], rows=2)
    detector = FaceDetector()
    faces = detector(frame, 0.0)
    assert detector.layout is None and matched(boxes, faces).all() and len(faces) == 8
    calls = counting(detector)
    assert matched(boxes, detector(classroom_frame(MOODS + ["happy", "sad"], rows=2, seed=1)[0], 0.25)).all()
    assert not calls


def test_a_face_that_changes_expression_keeps_its_box_and_student_id():
    detector, tracker = FaceDetector(), Tracker(coast_seconds=2.0)
    moods = [MOODS[i % 6] for i in range(20)]
    first = tracker(detector(gallery_frame(moods)[0], 0.0))
    changed, boxes = gallery_frame(moods[3:] + moods[:3], seed=5)  # every tile shows another expression
    later = tracker(detector(changed, 0.5))
    assert matched(boxes, later).all()
    assert sorted(later.track_ids.tolist()) == sorted(first.track_ids.tolist()) == list(range(1, 21))


def test_tracker_keeps_one_id_through_a_brief_miss():
    detector, tracker = FaceDetector(), Tracker(coast_seconds=2.0)
    frame, boxes = gallery_frame(MOODS * 2, cols=4)
    ids = tracker(detector(frame, 0.0)).track_ids
    tracker(detector(frame, 0.25))
    missed = tracker(Faces.from_boxes(np.asarray(boxes)[1:], 0.5),  # the detector misses student 1 once
                     holds_faces=lambda b: detector.holds_faces(frame, b))
    assert len(missed) == len(boxes)  # still in the frame: it coasts
    back = tracker(detector(frame, 0.75))
    assert sorted(back.track_ids.tolist()) == sorted(ids.tolist())


def test_a_student_who_leaves_is_not_a_face():
    """Six students leave: their coasting tracks must not be classified or counted."""
    moods = [MOODS[i % 6] for i in range(20)]
    left = [None if i in (1, 4, 7, 10, 13, 16) else m for i, m in enumerate(moods)]
    aggregator = MoodAggregator(minute_seconds=60)
    pipeline = FramePipeline(UniformClassifier(), aggregator, tracker=Tracker(coast_seconds=5.0), detect_every=2)
    for t in (0.0, 0.25, 0.5, 0.75):
        assert len(pipeline(gallery_frame(moods, seed=int(4 * t))[0], t)) == 20
    for t in (1.0, 1.25, 1.5, 1.75, 2.0):  # detection and reused-box frames alike
        faces = pipeline(gallery_frame(left, seed=int(4 * t))[0], t)
        assert len(faces) == 14, t
    assert aggregator.current().faces == 4 * 20 + 5 * 14


def test_tracker_drops_coasting_boxes_without_a_face():
    tracker = Tracker(coast_seconds=2.0)
    boxes = np.array([[100, 100, 80, 80], [400, 100, 80, 80]])
    tracker(Faces.from_boxes(boxes, 0.0))
    tracker(Faces.from_boxes(boxes, 0.25))
    gone = tracker(Faces.from_boxes(boxes[:1], 0.5), holds_faces=lambda b: np.zeros(len(b), bool))
    assert gone.track_ids.tolist() == [1]
    back = tracker(Faces.from_boxes(boxes, 1.0))  # the student returns: same id
    assert back.track_ids.tolist() == [1, 2]


def test_tiles_of_one_flat_colour_above_their_faces_are_not_taken_for_separators():
    # tiles of one colour, little darker than the background, with faces filling most of their height: the
    # thin bands of tile colour above and below each row of faces are flat lines like separators, but only
    # the background shows between the columns too
    rng = np.random.default_rng(0)
    frame, boxes = np.full((720, 1280, 3), 32, np.uint8), []
    for i in range(25):
        x, y = (i % 5) * 256, (i // 5) * 144
        cv2.rectangle(frame, (x + 2, y + 2), (x + 253, y + 141), (58, 52, 48), -1)
        fx, fy = x + 76 + int(rng.integers(-8, 9)), y + 20 + int(rng.integers(-4, 5))
        frame[fy:fy + 104, fx:fx + 104] = draw_face(MOODS[i % 6], 104, rng)[:, :, None]
        boxes.append((fx, fy, 104, 104))
    detector = FaceDetector()
    faces = detector(frame)
    assert len(detector.layout.tiles) == 25
    assert len(faces) == 25 and matched(boxes, faces).all()
