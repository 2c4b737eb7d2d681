"""Per-minute class mood and per-student numbers, built frame by frame, thread-safe.

How a minute's seven shares are computed (`method`):
* ``top``: share of the minute's faces whose most likely emotion is each one;
* ``mean``: mean of the faces' probability vectors;
* ``corrected``: the ``top`` shares with the model's known confusions undone:
  find the class mix p (p >= 0, sum 1) whose expected predictions C^T p best
  match the observed shares, with C the validation confusion matrix stored
  beside the model (row i = how faces of true emotion i get labelled).
`benchmarks/bench_classroom.py` measures which one tracks the true mix best.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from emotion.faces import Faces
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS

METHODS = ("top", "mean", "corrected")
# On the classroom bench with the shipped model (66.6 % on val): mean TVD 0.142 for top, 0.130 corrected,
# 0.207 mean (65.4 % model: 0.127 / 0.120 / 0.207; 50 % model: 0.17 / 0.26 / 0.26). top needs no confusion
# matrix, so it stays the default; re-measure with benchmarks/bench_classroom.py when the model changes.
DEFAULT_METHOD = "top"


@dataclass(frozen=True)
class MinuteMood:
    """One minute of a session: what the session CSV holds per row."""

    minute: int
    frames: int
    faces: int
    students: int
    shares: dict[str, float] | None  # None when no face was seen

    @property
    def dominant(self) -> str | None:
        return max(self.shares, key=self.shares.get) if self.shares else None

    @property
    def negative_share(self) -> float | None:
        return sum(self.shares[e] for e in NEGATIVE_EMOTIONS) if self.shares else None


@dataclass(frozen=True)
class StudentMinute:
    track_id: int
    minute: int
    faces: int
    shares: dict[str, float]

    @property
    def dominant(self) -> str:
        return max(self.shares, key=self.shares.get)


@dataclass
class _Tally:
    faces: int = 0
    probability_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS)))
    top_counts: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS)))

    def add(self, probabilities: np.ndarray) -> None:
        self.faces += len(probabilities)
        self.probability_sum += probabilities.sum(axis=0)
        np.add.at(self.top_counts, probabilities.argmax(axis=1), 1)


@dataclass
class _Minute:
    frames: int = 0
    tally: _Tally = field(default_factory=_Tally)
    students: dict[int, _Tally] = field(default_factory=dict)


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Closest point with non-negative entries summing to 1 (Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    cumulative = np.cumsum(u) - 1
    rho = np.nonzero(u - cumulative / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - cumulative[rho] / (rho + 1), 0)


def unmix(observed: np.ndarray, confusion: np.ndarray, iterations: int = 500) -> np.ndarray:
    """Class mix p minimising |C^T p - observed|^2 on the simplex (projected gradient)."""
    c = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1e-12)
    a = c.T
    step = 1.0 / max(np.linalg.norm(a, 2) ** 2, 1e-12)
    p = observed.copy()
    for _ in range(iterations):
        p = project_to_simplex(p - step * a.T @ (a @ p - observed))
    return p


class MoodAggregator:
    """Collects classified, tracked `Faces` into minutes of `minute_seconds` from the session start."""

    def __init__(self, minute_seconds: float = 60.0, method: str = DEFAULT_METHOD, confusion: np.ndarray | None = None):
        if method not in METHODS:
            raise ValueError(f"unknown aggregation {method!r}; expected one of {', '.join(METHODS)}")
        if method == "corrected" and confusion is None:
            raise ValueError("the 'corrected' aggregation needs the model's confusion matrix")
        self.minute_seconds = float(minute_seconds)
        self.method = method
        self.confusion = None if confusion is None else np.asarray(confusion, dtype=np.float64)
        self._minutes: dict[int, _Minute] = {}
        self._lock = threading.Lock()

    def minute_of(self, timestamp: float) -> int:
        return int(max(timestamp, 0.0) // self.minute_seconds)

    def add(self, faces: Faces) -> None:
        """Count one processed frame and its faces (probabilities and track ids must be set)."""
        minute = self.minute_of(faces.timestamp)
        probabilities = np.asarray(faces.probabilities, dtype=np.float64)
        with self._lock:
            bucket = self._minutes.setdefault(minute, _Minute())
            bucket.frames += 1
            if len(faces):
                bucket.tally.add(probabilities)
                for track_id in np.unique(faces.track_ids):
                    rows = probabilities[faces.track_ids == track_id]
                    bucket.students.setdefault(int(track_id), _Tally()).add(rows)

    def _shares(self, tally: _Tally) -> dict[str, float] | None:
        if tally.faces == 0:
            return None
        if self.method == "mean":
            vector = tally.probability_sum / tally.faces
        else:
            vector = tally.top_counts / tally.faces
            if self.method == "corrected":
                vector = unmix(vector, self.confusion)
        vector = vector / vector.sum()
        return {name: float(v) for name, v in zip(EMOTIONS, vector)}

    def minutes(self) -> list[MinuteMood]:
        """Every minute from 0 to the latest, the current partial one included; gaps show as empty minutes."""
        with self._lock:
            if not self._minutes:
                return []
            last = max(self._minutes)
            result = []
            for minute in range(last + 1):
                bucket = self._minutes.get(minute, _Minute())
                result.append(MinuteMood(minute, bucket.frames, bucket.tally.faces, len(bucket.students),
                                         self._shares(bucket.tally)))
            return result

    def current(self) -> MinuteMood | None:
        minutes = self.minutes()
        return minutes[-1] if minutes else None

    def student_minutes(self) -> list[StudentMinute]:
        with self._lock:
            return [StudentMinute(track_id, minute, tally.faces, self._shares(tally))
                    for minute, bucket in sorted(self._minutes.items())
                    for track_id, tally in sorted(bucket.students.items())]
