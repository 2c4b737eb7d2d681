"""Classify step: crop every detected face and classify them in one call of the process's shared inference
service (emotion/inference.py), batched with the faces of the other classes."""
from __future__ import annotations

import numpy as np

from emotion.classifier import EmotionClassifier
from emotion.faces import Faces
from emotion.inference import InferenceService
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


class Classify:
    def __init__(self, classifier: EmotionClassifier):
        self.classifier = classifier
        self.service = InferenceService.shared(classifier)

    def __call__(self, frame: np.ndarray, faces: Faces) -> Faces:
        crops = crop_faces(frame, faces.boxes)
        return faces.with_probabilities(self.service.predict(crops, classifier=self.classifier))
