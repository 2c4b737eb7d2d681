"""Stable pseudonymous student ids across frames by IoU / centre-distance matching."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotion.faces import Faces


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of `a` and of `b` (x, y, w, h)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ax1, ay1, ax2, ay2 = a[:, 0], a[:, 1], a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1, bx2, by2 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.clip(np.minimum(ax2[:, None], bx2[None]) - np.maximum(ax1[:, None], bx1[None]), 0, None)
    h = np.clip(np.minimum(ay2[:, None], by2[None]) - np.maximum(ay1[:, None], by1[None]), 0, None)
    inter = w * h
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return inter / np.maximum(union, 1e-9)


@dataclass
class _Track:
    track_id: int
    box: np.ndarray
    last_seen: float


class Tracker:
    """Greedy matching of new boxes to live tracks; a track survives `max_missing_seconds`
    without a detection, so a student who looks away keeps their id."""

    def __init__(self, min_iou: float = 0.3, max_center_shift: float = 0.5, max_missing_seconds: float = 10.0):
        self.min_iou = min_iou
        self.max_center_shift = max_center_shift  # as a fraction of the box side
        self.max_missing_seconds = max_missing_seconds
        self._tracks: list[_Track] = []
        self._next_id = 1

    def __call__(self, faces: Faces) -> Faces:
        now = faces.timestamp
        self._tracks = [t for t in self._tracks if now - t.last_seen <= self.max_missing_seconds]
        boxes = faces.boxes.astype(np.float64)
        ids = np.full(len(faces), -1, dtype=np.int64)
        if self._tracks and len(faces):
            old = np.stack([t.box for t in self._tracks])
            score = iou_matrix(old, boxes)
            centers_old = old[:, :2] + old[:, 2:] / 2
            centers_new = boxes[:, :2] + boxes[:, 2:] / 2
            shift = np.linalg.norm(centers_old[:, None] - centers_new[None], axis=2) / np.maximum(old[:, None, 2], 1)
            # boxes that barely overlap but whose centres are close still match (fast head moves)
            score = np.where((score < self.min_iou) & (shift <= self.max_center_shift), self.min_iou, score)
            score = np.where((score >= self.min_iou), score - 1e-3 * shift, -1.0)
            while True:
                t, f = np.unravel_index(np.argmax(score), score.shape)
                if score[t, f] < 0:
                    break
                ids[f] = self._tracks[t].track_id
                self._tracks[t].box, self._tracks[t].last_seen = boxes[f], now
                score[t, :], score[:, f] = -1.0, -1.0
        for f in np.flatnonzero(ids < 0):
            ids[f] = self._next_id
            self._tracks.append(_Track(self._next_id, boxes[f], now))
            self._next_id += 1
        return faces.with_track_ids(ids)

    def reset(self) -> None:
        self._tracks.clear()
        self._next_id = 1
