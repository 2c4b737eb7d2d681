"""The shared inference service alone (fake classifiers: the batching is the point), and through Classify."""
import threading
import time

import numpy as np
import pytest

from emotion.inference import InferenceService


class Echo:
    """Each crop's probabilities are its first pixel, so a result says which crop it came from; records batches."""

    path = None

    def __init__(self, seconds: float = 0.0):
        self.seconds, self.batches = seconds, []

    def predict(self, crops):
        self.batches.append(len(crops))
        time.sleep(self.seconds)
        return np.array([[float(c[0, 0])] * 7 for c in crops], np.float32).reshape(-1, 7)


def crops(*values):
    return [np.full((4, 4), v, np.uint8) for v in values]


@pytest.fixture
def service():
    made = []

    def make(classifier=None, **options):
        made.append(InferenceService(classifier or Echo(), **options))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_results_return_to_each_caller_in_order(service):
    svc = service(max_wait=0.02, max_batch=16)
    results = {}

    def caller(k):
        values = [(k * 10 + i) % 256 for i in range(k % 5 + 1)]
        results[k] = (values, [svc.predict(crops(*values))[:, 0].tolist() for _ in range(5)])

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(got == [[float(v) for v in values]] * 5 for values, got in results.values())
    assert max(svc.classifier.batches) > 5  # faces of several callers went into one call


def test_the_maximum_wait_holds_and_gathers_what_arrives_meanwhile(service):
    svc = service(max_wait=0.05, max_batch=64)
    started = time.monotonic()
    first = svc.submit(crops(1, 2), caller="a")
    second = svc.submit(crops(3), caller="b")
    assert first.result(timeout=1)[:, 0].tolist() == [1, 2] and second.result(timeout=1)[:, 0].tolist() == [3]
    assert time.monotonic() - started < 0.05 + 0.1
    assert svc.classifier.batches == [3]
    alone = time.monotonic()
    svc.predict(crops(4))
    assert time.monotonic() - alone < 0.05 + 0.1


def test_a_full_batch_does_not_wait(service):
    svc = service(max_wait=5.0, max_batch=4)
    started = time.monotonic()
    assert svc.predict(crops(1, 2, 3, 4)).shape == (4, 7)
    assert time.monotonic() - started < 1.0


def test_a_busy_caller_does_not_starve_the_others(service):
    svc = service(Echo(seconds=0.02), max_wait=0.01, max_batch=32)
    busy = [svc.submit(crops(*[7] * 32), caller="video") for _ in range(20)]  # 20 full batches queued
    time.sleep(0.03)
    quick = svc.submit(crops(9), caller="live")
    assert quick.result(timeout=2)[:, 0].tolist() == [9]
    assert sum(f.done() for f in busy) <= 3  # served after at most the batches already under way
    assert all(f.result(timeout=5).shape == (32, 7) for f in busy)


def test_a_slow_caller_does_not_block_the_others(service):
    svc = service(max_wait=0.02)
    svc.submit(crops(1), caller="slow")  # whose result is never collected
    gate = threading.Event()
    slow = threading.Thread(target=lambda: (svc.submit(crops(2), caller="slow"), gate.wait(5)))
    slow.start()
    started = time.monotonic()
    assert [svc.predict(crops(3), caller="other")[0, 0] for _ in range(5)] == [3] * 5
    assert time.monotonic() - started < 5 * (0.02 + 0.1)
    gate.set()
    slow.join()


def test_close_classifies_every_queued_face_then_refuses(service):
    svc = service(Echo(seconds=0.01), max_wait=0.01, max_batch=8)
    futures = [svc.submit(crops(i % 256, i % 256), caller=i % 3) for i in range(60)]
    svc.close()
    assert all(f.done() for f in futures)
    assert [f.result()[0, 0] for f in futures] == [float(i % 256) for i in range(60)]
    with pytest.raises(RuntimeError, match="closed"):
        svc.submit(crops(1))


def test_an_error_reaches_the_callers_of_its_batch_and_the_service_goes_on(service):
    class Failing(Echo):
        def predict(self, crops):
            if any(c[0, 0] == 13 for c in crops):
                raise ValueError("bad face")
            return super().predict(crops)

    svc = service(Failing(), max_wait=0.01)
    with pytest.raises(ValueError, match="bad face"):
        svc.predict(crops(13))
    assert svc.predict(crops(5))[0, 0] == 5


def test_one_shared_service_per_model_file_and_views(tmp_path):
    class Model(Echo):
        views, calibration, backend = "centre", None, "onnx"

        def __init__(self, path, views="centre"):
            super().__init__()
            self.path, self.views = path, views

    found = []
    threads = [threading.Thread(target=lambda: found.append(InferenceService.shared(Model(tmp_path / "m.keras"))))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in found}) == 1
    assert InferenceService.shared(Model(tmp_path / "m.keras", views="flip")) is not found[0]
    assert InferenceService.shared(Model(tmp_path / "other.keras")) is not found[0]


def test_classify_goes_through_the_shared_service_with_the_models_outputs(stand_in_model):
    from emotion.classifier import EmotionClassifier
    from emotion.classify import Classify, crop_faces
    from emotion.faces import Faces
    from tests.synthetic import gallery_frame

    classifier = EmotionClassifier.load(stand_in_model)
    frame, boxes = gallery_frame(["happy", "sad", None, "angry", "neutral"])
    step = Classify(classifier)
    assert step.service is InferenceService.shared(EmotionClassifier.load(stand_in_model))
    faces = step(frame, Faces.from_boxes(boxes, 0.0))
    np.testing.assert_allclose(faces.probabilities, classifier.predict(crop_faces(frame, boxes)), atol=1e-6)


def test_each_track_is_classified_at_most_at_its_rate_and_reuses_its_last_probabilities():
    from emotion.classify import Classify
    from emotion.faces import Faces

    classifier = Echo()
    step = Classify(classifier, per_track_hz=1.0)
    frame = np.zeros((100, 300, 3), np.uint8)
    frame[:, 100:] = 50
    frame[:, 200:] = 100
    boxes = [[0, 0, 50, 50], [100, 0, 50, 50], [200, 0, 50, 50]]
    classified, seen = [], {}
    for k in range(21):  # 4 analysed frames per second for 5 s; track 3 joins at 2 s, track 1 leaves at 4 s
        t = k / 4
        present = [i for i in (1, 2, 3) if (i != 3 or t >= 2) and (i != 1 or t < 4)]
        faces = Faces.from_boxes([boxes[i - 1] for i in present], t).with_track_ids(present)
        before = sum(classifier.batches)
        faces = step(frame + k, faces)  # the crops change from frame to frame
        classified.append(sum(classifier.batches) - before)
        for track, p in zip(present, faces.probabilities[:, 0].tolist()):
            seen.setdefault(track, []).append(p)
    assert classified[:8] == [2, 0, 0, 0, 2, 0, 0, 0] and classified[8] == 3  # the new track at once
    assert sum(classified) == 4 + 6 + 4  # tracks 1, 2, 3 once a second: t = 0..3, 0..5 and 2..5
    assert seen[1][:4] == [seen[1][0]] * 4 and seen[1][4] != seen[1][0]  # reused in between, then new
    assert Classify(classifier)  # 0: every frame
    every = Classify(Echo())
    for t in (0.0, 0.25):
        every(frame, Faces.from_boxes(boxes, t).with_track_ids([1, 2, 3]))
    assert every.classifier.batches == [3, 3]


def test_the_int8_model_gives_outputs_close_to_float32(stand_in_model):
    from emotion.classifier import EmotionClassifier
    from emotion.classify import crop_faces
    from tests.synthetic import gallery_frame

    frame, boxes = gallery_frame(["happy", "sad", "angry", "surprise", "neutral", "fear"], cols=3)
    crops = crop_faces(frame, boxes)
    float32 = EmotionClassifier.load(stand_in_model, backend="onnx")
    int8 = EmotionClassifier.load(stand_in_model, backend="onnx-int8")
    assert (float32.backend, int8.backend) == ("onnx", "onnx-int8")
    expected, got = float32.predict(crops), int8.predict(crops)
    assert np.abs(got - expected).max() < 0.1
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).mean() >= 5 / 6


def test_a_live_class_analyses_at_its_rate_when_camera_frames_arrive_unevenly():
    from emotion.live import LiveSession
    from emotion.session import SessionSettings

    class NoModel(Echo):
        name, metadata, val_accuracy = "none", {}, None

    now = [0.0]
    live = LiveSession(NoModel(), None, SessionSettings(analysis_fps=2), title="x", source_kind="camera",
                       clock=lambda: now[0])
    jitter = np.random.default_rng(0).uniform(0, 0.02, 600)
    for k in range(600):  # a 10 frames/s camera for 60 s
        now[0] = k / 10 + jitter[k]
        live.process(np.zeros((60, 80, 3), np.uint8))
    assert live.status().frames_analysed == 120
