"""Draw boxes, student ids and top emotions on the frame that goes back to the viewer."""
from __future__ import annotations

import cv2
import numpy as np

from emotion.faces import Faces
from emotion.labels import EMOTIONS

# BGR colours, one per emotion, readable on video.
EMOTION_COLORS_BGR = {
    "angry": (40, 40, 220), "disgust": (40, 140, 40), "fear": (160, 60, 160), "happy": (40, 200, 240),
    "neutral": (200, 200, 200), "sad": (200, 120, 40), "surprise": (40, 160, 250),
}


def annotate(frame: np.ndarray, faces: Faces, *, blur_faces: bool = False) -> np.ndarray:
    """A copy of `frame` with each face boxed and labelled "#id emotion NN%", from the probabilities `faces`
    carries: pass `MoodAggregator.smoothed(faces)` for each student's emotion over the last seconds,
    which does not flicker from frame to frame."""
    out = frame.copy()
    height, width = out.shape[:2]
    for i, (x, y, w, h) in enumerate(faces.boxes):
        x0, y0, x1, y1 = max(int(x), 0), max(int(y), 0), min(int(x + w), width), min(int(y + h), height)
        if blur_faces and x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = cv2.GaussianBlur(out[y0:y1, x0:x1], (0, 0), max(w, h) / 8)
        label, color = "", (255, 255, 255)
        if faces.classified and len(faces.probabilities):
            k = int(faces.probabilities[i].argmax())
            label, color = f"{EMOTIONS[k]} {faces.probabilities[i, k]:.0%}", EMOTION_COLORS_BGR[EMOTIONS[k]]
        if faces.track_ids[i] >= 0:
            label = f"#{faces.track_ids[i]} {label}"
        cv2.rectangle(out, (x0, y0), (x1, y1), color, 2)
        if label:
            scale = 0.4 if w < 90 else 0.5
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            top = max(y0 - th - 6, 0)
            cv2.rectangle(out, (x0, top), (x0 + tw + 4, top + th + 6), color, -1)
            cv2.putText(out, label, (x0 + 2, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out
