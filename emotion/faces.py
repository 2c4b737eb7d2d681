"""`Faces`: the one small object that carries a frame's faces through every step."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emotion.labels import EMOTIONS


@dataclass(frozen=True)
class Faces:
    """The faces of one frame: boxes (x, y, w, h in frame pixels), emotion probabilities
    (N x 7, EMOTIONS order; empty until classified), pseudonymous track ids
    (-1 until tracked) and the frame's time in seconds from the session start."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.int32))
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, len(EMOTIONS)), dtype=np.float32))
    track_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    timestamp: float = 0.0

    @classmethod
    def from_boxes(cls, boxes, timestamp: float) -> "Faces":
        boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
        return cls(boxes=boxes, probabilities=np.full((len(boxes), len(EMOTIONS)), np.nan, dtype=np.float32),
                   track_ids=np.full(len(boxes), -1, dtype=np.int64), timestamp=timestamp)

    def __len__(self) -> int:
        return len(self.boxes)

    @property
    def classified(self) -> bool:
        return len(self) == 0 or not np.isnan(self.probabilities).any()

    @property
    def top_emotions(self) -> list[str]:
        return [EMOTIONS[i] for i in self.probabilities.argmax(axis=1)] if len(self) else []

    def with_probabilities(self, probabilities: np.ndarray) -> "Faces":
        return replace(self,
                       probabilities=np.asarray(probabilities, dtype=np.float32).reshape(len(self), len(EMOTIONS)))

    def with_track_ids(self, track_ids) -> "Faces":
        return replace(self, track_ids=np.asarray(track_ids, dtype=np.int64).reshape(len(self)))
