"""Per-minute class mood and per-student numbers, built frame by frame, thread-safe.

How a minute's seven shares are computed (`method`, the estimators are in emotion/quantify.py):
* ``top``: share of the minute's faces whose most likely emotion is each one;
* ``mean``: mean of the faces' (calibrated) probability vectors;
* ``corrected``: the ``top`` shares with the model's known confusions undone: the class mix p
  whose expected labels C^T p best match the observed shares, C the validation confusion matrix;
* ``em``: the EM prior adjustment of Saerens, Latinne & Decaestecker (2002) on the calibrated
  probabilities, from the prior the model was trained under.
Every face counts once (a student seen in more frames counts more): giving each track the same weight
measured worse, because the tracker splits a student into several tracks and a short false track
would count as a whole student. A track's frames within CHUNK_SECONDS are kept as one mean (same
expression, nearly the same probabilities), which keeps EM and the intervals cheap. A student's
consecutive frames are not independent, so the interval of each share is a bootstrap over student
tracks (whole tracks are resampled), and a minute with fewer than MIN_STUDENTS tracks is "too few
faces to tell".
`benchmarks/bench_mood.py` measures which method tracks the true mix best (the default).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from emotion.faces import Faces
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS
from emotion.quantify import em_prior_shift, mean_shares, project_to_simplex, unmix  # noqa: F401 (re-exported)

METHODS = ("top", "mean", "corrected", "em")
# benchmarks/bench_mood.py, eight gallery videos of held-out faces, mean per-minute TVD: em 0.081,
# corrected 0.121, top 0.163, mean 0.218 (cycle-3 model); re-measure there when the model changes.
DEFAULT_METHOD = "em"
CHUNK_SECONDS = 2.0
MIN_STUDENTS = 3  # fewer tracks than this: "too few faces to tell" (a bootstrap over 1 or 2 tracks says nothing)
INTERVAL_LEVEL = 0.90
BOOTSTRAP_SAMPLES = 200
SMOOTH_SECONDS = 2.0  # time constant of the per-student label on tiles and in the strip (bench_mood.py: label
# changes per student-minute 8.6 -> 5.3, about the truth's own rate, for 2.4 points of accuracy lost to lag)


@dataclass(frozen=True)
class MinuteMood:
    """One minute of a session: what the session CSV holds per row, with optional share intervals."""

    minute: int
    frames: int
    faces: int
    students: int
    shares: dict[str, float] | None  # None when no face was seen
    low: dict[str, float] | None = None  # INTERVAL_LEVEL interval of each share, when computed
    high: dict[str, float] | None = None

    @property
    def dominant(self) -> str | None:
        return max(self.shares, key=self.shares.get) if self.shares else None

    @property
    def negative_share(self) -> float | None:
        return sum(self.shares[e] for e in NEGATIVE_EMOTIONS) if self.shares else None

    @property
    def too_few_faces(self) -> bool:
        """Faces were seen, but from fewer than MIN_STUDENTS students: the mix says little about a class."""
        return self.shares is not None and self.students < MIN_STUDENTS


@dataclass(frozen=True)
class StudentMinute:
    track_id: int
    minute: int
    faces: int
    shares: dict[str, float]
    latest: dict[str, float] | None = None  # smoothed probabilities at the student's last frame of the minute

    @property
    def dominant(self) -> str:
        return max(self.shares, key=self.shares.get)

    @property
    def now(self) -> str:
        """The student's current emotion: the smoothed label when known, else the minute's dominant one."""
        return max(self.latest, key=self.latest.get) if self.latest else self.dominant


@dataclass
class _Chunk:
    """One track's frames within one CHUNK_SECONDS slice of a minute."""

    faces: int = 0
    probability_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS)))
    top_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS)))


@dataclass
class _Minute:
    frames: int = 0
    chunks: dict[tuple[int, int], _Chunk] = field(default_factory=dict)  # (track id, chunk) -> chunk
    latest: dict[int, np.ndarray] = field(default_factory=dict)  # track id -> smoothed probabilities
    version: int = 0  # bumped on every frame, so cached results know when they are stale
    cached: tuple[int, MinuteMood] | None = None
    cached_students: tuple[int, list[StudentMinute]] | None = None


@dataclass(frozen=True)
class Evidence:
    """A set of chunks as arrays: each chunk's faces, mean probabilities, top-label shares and track."""

    faces: np.ndarray
    probabilities: np.ndarray
    top: np.ndarray
    tracks: np.ndarray  # index 0..students-1 of each chunk's track

    @classmethod
    def of(cls, chunks: dict[tuple[int, int], _Chunk]) -> "Evidence":
        faces = np.array([c.faces for c in chunks.values()], dtype=np.float64)
        _, tracks = np.unique([track for track, _ in chunks], return_inverse=True)
        return cls(faces, np.array([c.probability_sum for c in chunks.values()]) / faces[:, None],
                   np.array([c.top_counts for c in chunks.values()]) / faces[:, None], tracks.reshape(-1))

    @property
    def students(self) -> int:
        return int(self.tracks.max()) + 1


class TrackSmoother:
    """Each student's probabilities as an exponential moving average over about `seconds`, per track id,
    for the label a viewer reads (a single frame's label flickers). A track unseen for longer than
    `reset_seconds` starts afresh."""

    def __init__(self, seconds: float = SMOOTH_SECONDS, reset_seconds: float = 10.0):
        self.seconds, self.reset_seconds = seconds, reset_seconds
        self._state: dict[int, tuple[float, np.ndarray]] = {}

    def update(self, faces: Faces) -> dict[int, np.ndarray]:
        """Fold in one frame's faces; returns the smoothed probabilities of each of its tracks."""
        out = {}
        for track_id, p in zip(faces.track_ids.tolist(), np.asarray(faces.probabilities, dtype=np.float64)):
            seen, previous = self._state.get(track_id, (-math.inf, None))
            gap = faces.timestamp - seen
            if previous is None or gap > self.reset_seconds:
                smoothed = p
            else:
                smoothed = previous + (1 - math.exp(-max(gap, 0.0) / self.seconds)) * (p - previous)
            self._state[track_id] = (faces.timestamp, smoothed)
            out[track_id] = smoothed
        return out

    def smoothed(self, faces: Faces) -> Faces:
        """`faces` with each tracked face's probabilities replaced by its track's current smoothed ones."""
        if not faces.classified or not len(faces):
            return faces
        rows = [self._state.get(int(t), (0.0, p))[1] for t, p in zip(faces.track_ids, faces.probabilities)]
        return faces.with_probabilities(np.array(rows))


class MoodAggregator:
    """Collects classified, tracked `Faces` into minutes of `minute_seconds` from the session start.

    `confusion` (the validation confusion matrix) is needed by ``corrected``; ``em`` uses `prior`,
    the class prior the model's probabilities were trained under (see `for_model`), else the class
    frequencies of the confusion matrix, else (a model that states nothing) equal shares."""

    def __init__(self, minute_seconds: float = 60.0, method: str = DEFAULT_METHOD, confusion: np.ndarray | None = None,
                 *, prior: np.ndarray | None = None, interval_samples: int = BOOTSTRAP_SAMPLES):
        if method not in METHODS:
            raise ValueError(f"unknown aggregation {method!r}; expected one of {', '.join(METHODS)}")
        if method == "corrected" and confusion is None:
            raise ValueError("the 'corrected' aggregation needs the model's confusion matrix")
        self.minute_seconds = float(minute_seconds)
        self.method = method
        self.confusion = None if confusion is None else np.asarray(confusion, dtype=np.float64)
        if prior is None:
            prior = np.ones(len(EMOTIONS)) if self.confusion is None else self.confusion.sum(axis=1)
        # a share of 0 in a stored prior (an underflow in the fit of a stand-in model) would divide by zero in EM
        prior = np.asarray(prior, dtype=np.float64)
        prior = np.maximum(np.where(np.isfinite(prior), prior, 0.0), 1e-3)
        self.prior = prior / prior.sum()
        self.interval_samples = interval_samples
        self.smoother = TrackSmoother()
        self._minutes: dict[int, _Minute] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, metadata: dict, minute_seconds: float = 60.0, method: str = DEFAULT_METHOD,
                  **options) -> "MoodAggregator":
        """An aggregator with what the model's metadata knows: the confusion matrix and the prior its probabilities
        were trained under (stored by the trainer: class counts x class weights), else the one its calibration
        implies on `val` (older models). bench_mood.py, mean TVD on eight videos: 0.081 with the first, 0.086
        with the second, which is estimated from a few thousand faces."""
        prior = metadata.get("training_prior") or metadata.get("calibration", {}).get("prior")
        return cls(minute_seconds, method, metadata.get("validation", {}).get("confusion_matrix"), prior=prior,
                   **options)

    def minute_of(self, timestamp: float) -> int:
        return int(max(timestamp, 0.0) // self.minute_seconds)

    def add(self, faces: Faces) -> None:
        """Count one processed frame and its faces (probabilities and track ids must be set)."""
        minute = self.minute_of(faces.timestamp)
        chunk = int((max(faces.timestamp, 0.0) - minute * self.minute_seconds) // CHUNK_SECONDS)
        probabilities = np.asarray(faces.probabilities, dtype=np.float64)
        with self._lock:
            bucket = self._minutes.setdefault(minute, _Minute())
            bucket.frames += 1
            bucket.version += 1
            for track_id, p in zip(faces.track_ids.tolist(), probabilities):
                tally = bucket.chunks.setdefault((track_id, chunk), _Chunk())
                tally.faces += 1
                tally.probability_sum += p
                tally.top_counts[p.argmax()] += 1
            bucket.latest.update(self.smoother.update(faces))

    def smoothed(self, faces: Faces) -> Faces:
        """`faces` labelled with each student's smoothed emotion (for the tiles a viewer reads)."""
        with self._lock:
            return self.smoother.smoothed(faces)

    def _estimate(self, evidence: Evidence, weights: np.ndarray, **em_options) -> np.ndarray:
        """The method's mix for chunk weights (n,) or bootstrap replicates of them (b, n)."""
        if self.method == "mean":
            return mean_shares(evidence.probabilities, weights)
        if self.method == "em":
            return em_prior_shift(evidence.probabilities, weights, self.prior, **em_options)
        observed = mean_shares(evidence.top, weights)
        return unmix(observed, self.confusion) if self.method == "corrected" else observed

    def estimate(self, evidence: Evidence) -> np.ndarray:
        return self._estimate(evidence, evidence.faces)

    def interval(self, evidence: Evidence, estimate: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Percentile bootstrap over student tracks: resample whole tracks, re-estimate, take the central
        INTERVAL_LEVEL of the replicates per emotion. EM starts at `estimate` with 1 % of the prior mixed in
        (near the answer, and no share at 0, which EM could never leave) and stops at a 1e-4 change: the
        quantiles are then within 0.1 point of converged ones, in a fraction of the time."""
        rng = np.random.default_rng(seed)
        students = evidence.students
        draws = rng.multinomial(students, np.full(students, 1 / students), size=self.interval_samples)
        replicates = self._estimate(evidence, draws[:, evidence.tracks] * evidence.faces,
                                    start=0.99 * estimate + 0.01 * self.prior, tolerance=1e-4)
        tail = (1 - INTERVAL_LEVEL) / 2
        return np.quantile(replicates, tail, axis=0), np.quantile(replicates, 1 - tail, axis=0)

    def _mood(self, minute: int, frames: int, evidence: Evidence | None) -> MinuteMood:
        if evidence is None:
            return MinuteMood(minute, frames, 0, 0, None)
        estimate = self.estimate(evidence)
        low, high = self.interval(evidence, estimate, seed=minute) if self.interval_samples else (None, None)
        return MinuteMood(minute, frames, int(evidence.faces.sum()), evidence.students, _named(estimate),
                          _named(low), _named(high))

    def minutes(self) -> list[MinuteMood]:
        """Every minute from 0 to the latest, the current partial one included; gaps show as empty minutes.
        Minutes are computed outside the lock (the bootstrap takes a moment; frames keep coming) and cached."""
        with self._lock:
            if not self._minutes:
                return []
            snapshot = []
            for minute in range(max(self._minutes) + 1):
                bucket = self._minutes.get(minute, _Minute())
                if bucket.cached and bucket.cached[0] == bucket.version:
                    snapshot.append(bucket.cached[1])
                else:
                    snapshot.append((minute, bucket.version, bucket.frames,
                                     Evidence.of(bucket.chunks) if bucket.chunks else None))
        result = [item if isinstance(item, MinuteMood) else self._mood(item[0], *item[2:]) for item in snapshot]
        with self._lock:
            for item, mood in zip(snapshot, result):
                if not isinstance(item, MinuteMood) and item[0] in self._minutes:
                    bucket = self._minutes[item[0]]
                    if bucket.version == item[1]:
                        bucket.cached = (item[1], mood)
        return result

    def current(self) -> MinuteMood | None:
        minutes = self.minutes()
        return minutes[-1] if minutes else None

    def _students(self, minute: int, bucket: _Minute) -> list[StudentMinute]:
        if bucket.cached_students and bucket.cached_students[0] == bucket.version:
            return bucket.cached_students[1]
        result = []
        for track_id in sorted({track for track, _ in bucket.chunks}):
            chunks = {key: c for key, c in bucket.chunks.items() if key[0] == track_id}
            result.append(StudentMinute(track_id, minute, sum(c.faces for c in chunks.values()),
                                        _named(self.estimate(Evidence.of(chunks))), _named(bucket.latest.get(track_id))))
        bucket.cached_students = (bucket.version, result)
        return result

    def student_minutes(self) -> list[StudentMinute]:
        with self._lock:
            return [s for minute, bucket in sorted(self._minutes.items()) for s in self._students(minute, bucket)]


def _named(vector) -> dict[str, float] | None:
    return None if vector is None else {name: float(v) for name, v in zip(EMOTIONS, vector)}
