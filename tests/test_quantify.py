"""The class-mood estimate from synthetic faces whose truth is known: every aggregation method, the
calibration, the intervals, the smoothed per-student labels and the interval columns of the CSV."""
import io
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from emotion.aggregate import METHODS, MIN_STUDENTS, MinuteMood, MoodAggregator, TrackSmoother
from emotion.calibration import calibrate, check_calibration
from emotion.faces import Faces
from emotion.labels import EMOTIONS
from emotion.quantify import em_prior_shift
from emotion.session_csv import INTERVAL_COLUMNS, SESSION_INTERVAL_COLUMNS, minute_rows, to_csv_bytes
from training.calibration import expected_calibration_error, fit_calibration, implied_prior

K = len(EMOTIONS)
# A classifier that is right 60-85 % of the time and confuses neighbours, like the real one.
CONFUSION = np.diag([0.6, 0.7, 0.5, 0.85, 0.65, 0.55, 0.8])
CONFUSION += np.roll(np.diag(0.95 - CONFUSION.diagonal()), 1, axis=1) + 0.05 / 7  # errors mostly to the next one
TRAINING_PRIOR = np.array([0.14, 0.05, 0.15, 0.2, 0.16, 0.16, 0.14])
TRUE_MIX = np.array([0.05, 0.0, 0.25, 0.15, 0.35, 0.2, 0.0])


def posteriors(labels: np.ndarray, rng) -> np.ndarray:
    """Calibrated probabilities of faces of true emotions `labels`: each face's label is drawn through
    CONFUSION, and what the model then knows is Bayes' rule under TRAINING_PRIOR."""
    seen = np.array([rng.choice(K, p=CONFUSION[y]) for y in labels])
    joint = TRAINING_PRIOR[:, None] * CONFUSION
    return (joint / joint.sum(axis=0))[:, seen].T


def class_aggregator(method: str, students: int, seed: int = 0, seconds: float = 60.0,
                     **options) -> tuple[MoodAggregator, np.ndarray]:
    """A minute of `students` tracks at 2 frames/s; each student shows one expression per 10 s, drawn from
    TRUE_MIX, which the classifier sees the same way in each of its frames (consecutive frames are not
    independent). Returns the aggregator and the true mix of the expressions shown."""
    rng = np.random.default_rng(seed)
    aggregator = MoodAggregator(60, method, (CONFUSION * 1000).round(), prior=TRAINING_PRIOR, **options)
    expressions = rng.choice(K, size=(6, students), p=TRUE_MIX)
    seen = [posteriors(labels, rng) for labels in expressions]
    for frame in range(int(seconds * 2)):
        aggregator.add(Faces(boxes=np.zeros((students, 4), np.int32), probabilities=seen[frame // 20],
                             track_ids=np.arange(students), timestamp=frame / 2))
    shown = expressions[:max(int(seconds) // 10, 1)]
    return aggregator, np.bincount(shown.ravel(), minlength=K) / shown.size


def tvd(shares: dict, mix: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.array([shares[e] for e in EMOTIONS]) - mix).sum())


# Counting top labels or averaging probabilities keeps the classifier's confusions (here a TVD of
# about 0.2); undoing them recovers the mix up to the noise of 300 expressions' labels.
TOLERANCE = {"top": 0.3, "mean": 0.3, "corrected": 0.05, "em": 0.05}


def minute_error(method: str, students: int = 50) -> float:
    aggregator, mix = class_aggregator(method, students=students, interval_samples=0)
    minute = aggregator.minutes()[0]
    assert minute.students == students and sum(minute.shares.values()) == pytest.approx(1)
    return tvd(minute.shares, mix)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_recovers_a_known_mix_within_its_tolerance(method):
    assert minute_error(method) <= TOLERANCE[method]


def test_undoing_the_confusions_beats_counting_top_labels():
    errors = {m: minute_error(m) for m in METHODS}
    assert max(errors["em"], errors["corrected"]) < min(errors["top"], errors["mean"]) - 0.05


def test_em_keeps_a_mix_equal_to_the_training_prior_and_weighs_faces():
    rng = np.random.default_rng(1)
    labels = rng.choice(K, size=20000, p=TRAINING_PRIOR)
    p = posteriors(labels, rng)
    np.testing.assert_allclose(em_prior_shift(p, np.ones(len(p)), TRAINING_PRIOR), TRAINING_PRIOR, atol=0.02)
    # weights (n,) or bootstrap replicates (b, n): a replicate that keeps only the happy faces finds them all happy
    happy = (labels == EMOTIONS.index("happy")).astype(float)
    both = em_prior_shift(p, np.stack([np.ones(len(p)), happy]), TRAINING_PRIOR)
    assert both.shape == (2, K) and both[1, EMOTIONS.index("happy")] > 0.97


def test_calibration_lowers_the_ece_of_over_confident_scores():
    rng = np.random.default_rng(2)
    labels = rng.choice(K, size=5000, p=TRAINING_PRIOR)
    logits = rng.normal(0, 1, (5000, K)) + 1.5 * np.eye(K)[labels]
    over_confident = np.exp(3 * logits) / np.exp(3 * logits).sum(axis=1, keepdims=True)
    block = fit_calibration(over_confident, labels)
    # the calibrated posterior is about softmax(1.5 * logits): three times the logits is two times too sharp
    assert block["method"] == "temperature" and block["temperature"] == pytest.approx(2, rel=0.15)
    assert block["ece_after"] < block["ece_before"] / 3 and block["log_loss_after"] < block["log_loss_before"]
    calibrated = calibrate(over_confident.astype(np.float32), block)
    assert expected_calibration_error(calibrated, labels) == pytest.approx(block["ece_after"], abs=1e-3)
    assert (calibrated.argmax(axis=1) == over_confident.argmax(axis=1)).all()  # top labels are kept


def test_implied_prior_is_the_prior_the_posteriors_were_made_under():
    rng = np.random.default_rng(3)
    labels = rng.choice(K, size=20000, p=np.full(K, 1 / K))  # a validation set unlike the training mix
    prior = implied_prior(posteriors(labels, rng), labels, 1.0, K)
    np.testing.assert_allclose(prior, TRAINING_PRIOR, atol=0.02)


def test_models_without_calibration_keep_their_probabilities_and_bad_blocks_are_refused():
    p = np.array([[0.7, 0.3, 0, 0, 0, 0, 0]], np.float32)
    assert calibrate(p, None) is p
    check_calibration(None)
    for bad in ({"method": "platt"}, {"method": "temperature", "temperature": 0}):
        with pytest.raises(ValueError):
            check_calibration(bad)


def test_intervals_widen_as_faces_get_fewer_and_few_students_cannot_tell():
    widths = {}
    for students in (40, 8):
        minute = class_aggregator("em", students=students)[0].minutes()[0]
        assert all(minute.low[e] <= minute.shares[e] + 1e-9 and minute.shares[e] <= minute.high[e] + 1e-9
                   for e in EMOTIONS)
        widths[students] = np.mean([minute.high[e] - minute.low[e] for e in EMOTIONS])
        assert not minute.too_few_faces
    assert widths[8] > 1.5 * widths[40]
    few = class_aggregator("em", students=MIN_STUDENTS - 1)[0].minutes()[0]
    assert few.too_few_faces and few.shares is not None


def test_smoothed_labels_ride_out_a_flicker_and_restart_after_a_gap():
    smoother = TrackSmoother(seconds=3.0, reset_seconds=10.0)
    happy, sad = (np.eye(K)[EMOTIONS.index(e)] * 0.9 + 0.1 / K for e in ("happy", "sad"))
    for step in range(20):  # happy for 10 s, with a one-frame sad flicker
        faces = Faces(boxes=np.zeros((1, 4), np.int32), probabilities=np.array([sad if step == 15 else happy]),
                      track_ids=np.array([4]), timestamp=step * 0.5)
        smoother.update(faces)
        assert smoother.smoothed(faces).top_emotions == ["happy"]
    later = Faces(boxes=np.zeros((1, 4), np.int32), probabilities=np.array([sad]), track_ids=np.array([4]),
                  timestamp=30.0)
    smoother.update(later)
    assert smoother.smoothed(later).top_emotions == ["sad"]


def test_student_minutes_carry_the_smoothed_label():
    students = class_aggregator("top", students=4, seconds=10, interval_samples=0)[0].student_minutes()
    assert len(students) == 4 and all(s.latest and s.now in EMOTIONS for s in students)


STARTED = datetime(2024, 5, 7, 9, 0, tzinfo=timezone.utc)


def test_default_session_csv_header_is_unchanged():
    minutes = class_aggregator("em", students=5, seconds=10)[0].minutes()
    header = to_csv_bytes(minute_rows("s1", STARTED, minutes)).decode().splitlines()[0]
    assert header == ("session_id,minute,minute_start,frames,faces,students,angry,disgust,fear,happy,neutral,sad,"
                      "surprise,dominant")


def test_interval_columns_follow_the_default_ones():
    minutes = class_aggregator("em", students=5, seconds=10)[0].minutes()
    minutes.append(MinuteMood(1, 3, 0, 0, None))  # a minute without faces
    table = pd.read_csv(io.BytesIO(
        to_csv_bytes(minute_rows("s1", STARTED, minutes, intervals=True), SESSION_INTERVAL_COLUMNS)))
    assert list(table.columns) == SESSION_INTERVAL_COLUMNS
    assert INTERVAL_COLUMNS[:4] == ["angry_low", "angry_high", "disgust_low", "disgust_high"]
    first = table.iloc[0]
    assert all(first[f"{e}_low"] <= first[e] + 1e-6 <= first[f"{e}_high"] + 2e-6 for e in EMOTIONS)
    assert table.iloc[1][INTERVAL_COLUMNS].isna().all()
