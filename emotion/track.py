"""Stable pseudonymous student ids across frames by IoU / centre-distance matching.

The detector misses a given face in some frames. A track detected at least
`coast_after_hits` times that is missed in this frame *coasts* at its last box
for up to `coast_seconds`, so the student still counts (a gallery tile does not
move), but only while that box still holds a face (`holds_faces`, the detector's
cheap check): a student who leaves stops counting at once and keeps their id
should they come back within `max_missing_seconds`. A one-off false detection
never coasts.

    tracker = Tracker(coast_seconds=2.0)
    faces = tracker(detector(frame, t), holds_faces=lambda boxes: detector.holds_faces(frame, boxes))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

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
    hits: int = 1


class Tracker:
    """Greedy matching of new boxes to live tracks. A track is forgotten after
    `max_missing_seconds` without a detection, so a student who looks away for a
    moment keeps their id; ids are never reused within a session."""

    def __init__(self, min_iou: float = 0.3, max_center_shift: float = 0.5, max_missing_seconds: float = 10.0,
                 coast_seconds: float = 0.0, coast_after_hits: int = 2):
        self.min_iou = min_iou
        self.max_center_shift = max_center_shift  # as a fraction of the box side
        self.max_missing_seconds = max_missing_seconds
        self.coast_after_hits = coast_after_hits
        self.coast_seconds = coast_seconds
        self._tracks: list[_Track] = []
        self._next_id = 1

    def _match(self, boxes: np.ndarray) -> list[tuple[int, int]]:
        """(track index, box index) pairs, best overlap first."""
        if not self._tracks or not len(boxes):
            return []
        old = np.stack([t.box for t in self._tracks])
        score = iou_matrix(old, boxes)
        shift = np.linalg.norm((old[:, :2] + old[:, 2:] / 2)[:, None] - (boxes[:, :2] + boxes[:, 2:] / 2)[None],
                               axis=2) / np.maximum(old[:, None, 2], 1)
        # boxes that barely overlap but whose centres are close still match (fast head moves)
        score = np.where((score < self.min_iou) & (shift <= self.max_center_shift), self.min_iou, score)
        score = np.where(score >= self.min_iou, score - 1e-3 * shift, -1.0)
        pairs = []
        while score.size and score.max() >= 0:
            t, b = np.unravel_index(np.argmax(score), score.shape)
            pairs.append((int(t), int(b)))
            score[t, :], score[:, b] = -1.0, -1.0
        return pairs

    def __call__(self, faces: Faces, holds_faces: Callable[[np.ndarray], np.ndarray] | None = None) -> Faces:
        """This frame's faces with their ids, plus the coasting tracks whose box still holds a face
        (`holds_faces(boxes)` -> one bool per box; None: every coasting track counts)."""
        now = faces.timestamp
        self._tracks = [t for t in self._tracks if now - t.last_seen <= self.max_missing_seconds]
        boxes = faces.boxes.astype(np.float64)
        matched_tracks, ids = set(), np.full(len(faces), -1, dtype=np.int64)
        for t, b in self._match(boxes):
            track = self._tracks[t]
            track.box, track.last_seen, track.hits = boxes[b], now, track.hits + 1
            ids[b] = track.track_id
            matched_tracks.add(t)
        for b in np.flatnonzero(ids < 0):
            self._tracks.append(_Track(self._next_id, boxes[b], now))
            ids[b] = self._next_id
            self._next_id += 1
        coasting = [t for i, t in enumerate(self._tracks) if i not in matched_tracks
                    and t.hits >= self.coast_after_hits and 0 < now - t.last_seen <= self.coast_seconds]
        if coasting and holds_faces is not None:
            held = holds_faces(np.round([t.box for t in coasting]).astype(np.int32))
            coasting = [t for t, face in zip(coasting, held) if face]
        if not coasting:
            return faces.with_track_ids(ids)
        out_boxes = np.concatenate([faces.boxes, np.round([t.box for t in coasting])])
        out_ids = np.concatenate([ids, [t.track_id for t in coasting]])
        return Faces.from_boxes(out_boxes, now).with_track_ids(out_ids)

    def reset(self) -> None:
        self._tracks.clear()
        self._next_id = 1
