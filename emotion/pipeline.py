"""detect -> track -> classify -> aggregate, one frame at a time, the same for camera, file and screen.

Tracking runs before classification so that the faces the tracker keeps for a
frame (confirmed detections and briefly missed, coasting students) are
classified together in one batched call. A box not detected in this frame (a
coasting track, or a box reused between detections) is kept only while the
detector still finds a face in it: a student who leaves is not a face.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from emotion.aggregate import MoodAggregator
from emotion.classifier import EmotionClassifier
from emotion.classify import Classify
from emotion.detect import DetectorSettings, FaceDetector
from emotion.faces import Faces
from emotion.track import Tracker

STAGES = ("detect", "track", "classify", "aggregate")


@dataclass
class StageTimer:
    """Seconds spent per stage, for the benchmark and the page's status line."""

    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    faces: int = 0

    def reset(self) -> None:
        """Start counting afresh (the benchmark leaves out its warm-up frame)."""
        self.totals, self.frames, self.faces = dict.fromkeys(STAGES, 0.0), 0, 0

    def per_frame_ms(self) -> dict[str, float]:
        return {k: 1000 * v / max(self.frames, 1) for k, v in self.totals.items()}


class FramePipeline:
    """Runs the steps on each frame and feeds the aggregator.

    With `detect_every` > 1 the detector runs on every Nth processed frame and the
    frames in between reuse the last boxes that still hold a face (their crops are
    re-classified): a full detection costs more than checking known boxes. With
    `classify_per_second` each track is classified at most that often (0: every frame).
    """

    def __init__(self, classifier: EmotionClassifier, aggregator: MoodAggregator, *,
                 detector: FaceDetector | None = None, tracker: Tracker | None = None, detect_every: int = 1,
                 classify_per_second: float = 0.0):
        self.detect = detector or FaceDetector(DetectorSettings())
        self.classify = Classify(classifier, classify_per_second)
        self.track = tracker or Tracker()
        self.aggregator = aggregator
        self.detect_every = max(int(detect_every), 1)
        self.timer = StageTimer()
        self._last_boxes: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, timestamp: float) -> Faces:
        clock = time.perf_counter
        t0 = clock()
        if self._last_boxes is None or self.timer.frames % self.detect_every == 0:
            faces = self.detect(frame, timestamp)
        else:
            faces = Faces.from_boxes(self._last_boxes[self.detect.holds_faces(frame, self._last_boxes)], timestamp)
        self._last_boxes = faces.boxes
        t1 = clock()
        faces = self.track(faces, holds_faces=lambda boxes: self.detect.holds_faces(frame, boxes))
        t2 = clock()
        faces = self.classify(frame, faces)
        t3 = clock()
        self.aggregator.add(faces)
        t4 = clock()
        for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            self.timer.totals[stage] += seconds
        self.timer.frames += 1
        self.timer.faces += len(faces)
        return faces
