"""Classify step: crop every detected face and classify them in one call of the process's shared inference
service (emotion/inference.py), batched with the faces of the other classes."""
from __future__ import annotations

import numpy as np

from emotion.classifier import EmotionClassifier
from emotion.faces import Faces
from emotion.inference import InferenceService
from emotion.labels import EMOTIONS
from emotion.preprocess import to_gray


def crop_faces(frame: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """Gray crops of the boxes, clipped to the frame."""
    gray = to_gray(frame)
    height, width = gray.shape
    crops = []
    for x, y, w, h in boxes:
        x0, y0 = max(int(x), 0), max(int(y), 0)
        x1, y1 = min(int(x + w), width), min(int(y + h), height)
        crops.append(gray[y0:y1, x0:x1] if x1 > x0 and y1 > y0 else np.zeros((48, 48), np.uint8))
    return crops


class TrackRate:
    """Which tracked faces are due a classification: each track at most `per_second` times a second (0: every
    frame); the others reuse their track's last probabilities. A frame's time may come up to 10 % of the
    interval early (live frames arrive unevenly) and still count as due."""

    EARLY = 0.9  # a track counts as due from this share of its interval on

    def __init__(self, per_second: float = 0.0):
        self.seconds = 1.0 / per_second if per_second else 0.0
        self.stretch = 1.0  # > 1 while the server is busy: each track is classified that many times less often
        self._last: dict[int, tuple[float, np.ndarray]] = {}  # track id -> (time classified, probabilities)

    @property
    def seconds_between(self) -> float:
        """How often a student's face is classified now, in seconds (0: every analysed frame)."""
        return self.seconds * self.stretch

    def due(self, faces: Faces) -> np.ndarray:
        """A mask of the faces to classify now: untracked ones, new tracks and tracks due again."""
        interval = self.EARLY * self.seconds_between
        return np.array([t < 0 or t not in self._last or faces.timestamp - self._last[t][0] >= interval
                         for t in faces.track_ids.tolist()], dtype=bool)

    def fill(self, faces: Faces, due: np.ndarray, probabilities: np.ndarray) -> Faces:
        """`faces` with the new probabilities of the due faces and their track's last ones for the others;
        tracks no longer in the frame are forgotten."""
        ids = faces.track_ids.tolist()
        result = np.empty((len(faces), len(EMOTIONS)), np.float32)
        result[due] = probabilities
        for i in np.flatnonzero(~due):
            result[i] = self._last[ids[i]][1]
        present = set(ids)
        self._last = {t: last for t, last in self._last.items() if t in present}
        self._last.update({t: (faces.timestamp, p) for t, p, d in zip(ids, result, due) if d and t >= 0})
        return faces.with_probabilities(result)


class Classify:
    def __init__(self, classifier: EmotionClassifier, per_track_hz: float = 0.0):
        self.classifier = classifier
        self.service = InferenceService.shared(classifier)
        self.rate = TrackRate(per_track_hz)

    def __call__(self, frame: np.ndarray, faces: Faces) -> Faces:
        due = self.rate.due(faces)
        crops = crop_faces(frame, faces.boxes[due])
        return self.rate.fill(faces, due, self.service.predict(crops, classifier=self.classifier))
