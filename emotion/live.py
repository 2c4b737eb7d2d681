"""A live class session: frames arrive from a camera, a screen grabber or a browser, at their own pace.

`LiveSession.process(frame)` is safe to call from the video thread. It analyses at
most `analysis_fps` frames per second and never queues: when the pipeline is busy
with an earlier frame, or the next analysis is not due yet, the newest frame is
returned with the latest annotations drawn on it. Results reach the page through
the session's own lock-protected state, never through Streamlit.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from emotion.aggregate import DEFAULT_METHOD, MoodAggregator
from emotion.alerts import AlertRule
from emotion.annotate import annotate
from emotion.classifier import EmotionClassifier
from emotion.detect import DetectorSettings, FaceDetector
from emotion.faces import Faces
from emotion.pipeline import FramePipeline
from emotion.recorder import SessionRecorder
from emotion.store import SessionStore
from emotion.track import Tracker


@dataclass(frozen=True)
class LiveSettings:
    analysis_fps: float = 2.0
    minute_seconds: float = 60.0
    aggregation: str = DEFAULT_METHOD
    blur_faces: bool = False
    coast_seconds: float = 2.0  # a briefly missed student keeps counting this long (see emotion/track.py)
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    alert_rule: AlertRule = field(default_factory=AlertRule)


@dataclass(frozen=True)
class LiveStatus:
    frames_received: int
    frames_analysed: int
    seconds: float  # since the first frame
    last_face_seconds: float | None  # session time of the last frame with a face
    last_frame_age: float | None  # wall-clock seconds since the last frame arrived
    session_id: str | None
    ended: bool
    waiting: float  # seconds since the session was set up (while no frame has arrived: how long we wait)


class LiveSession:
    def __init__(self, classifier: EmotionClassifier, store: SessionStore | None, settings: LiveSettings, *,
                 title: str, source_kind: str, source_name: str = "", owner: str = "", clock=time.monotonic):
        """`owner`: the signed-in user the stored session belongs to ("" with sign-in off)."""
        self.classifier, self.store, self.settings = classifier, store, settings
        self.title, self.source_kind, self.source_name, self.owner = title, source_kind, source_name, owner
        self.clock = clock
        confusion = classifier.metadata.get("validation", {}).get("confusion_matrix")
        self.aggregator = MoodAggregator(settings.minute_seconds, settings.aggregation, confusion)
        self.pipeline = FramePipeline(classifier, self.aggregator, detector=FaceDetector(settings.detector),
                                      tracker=Tracker(coast_seconds=settings.coast_seconds))
        self.recorder: SessionRecorder | None = None
        self._busy = threading.Lock()  # held while a frame is being analysed
        self._state = threading.Lock()  # guards the fields below
        self._start: float | None = None
        self._next_due = 0.0
        self._latest = Faces()
        self._received = 0
        self._analysed = 0
        self._last_face: float | None = None
        self._last_arrival: float | None = None
        self._ended = False
        self._created = clock()

    @property
    def session_id(self) -> str | None:
        return self.recorder.session_id if self.recorder else None

    def _open_session(self) -> None:
        if self.store is None:
            return
        session_id = self.store.create_session(
            title=self.title, source_kind=self.source_kind, source_name=self.source_name,
            minute_seconds=self.settings.minute_seconds, model_name=self.classifier.name,
            model_meta={"val_accuracy": self.classifier.val_accuracy},
            settings={**asdict(self.settings), "model": self.classifier.name}, owner=self.owner)
        self.recorder = SessionRecorder(self.store, session_id, self.aggregator, alert_rule=self.settings.alert_rule)

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Analyse `frame` if due and the pipeline is free; return it annotated either way."""
        now = self.clock()
        with self._state:
            if self._ended:
                return frame
            if self._start is None:
                self._start = now
                self._open_session()
            self._received += 1
            self._last_arrival = now
            due = now >= self._next_due
        if due and self._busy.acquire(blocking=False):
            try:
                faces = self.pipeline(frame, now - self._start)
                with self._state:
                    self._latest = faces
                    self._analysed += 1
                    self._next_due = now + 1.0 / self.settings.analysis_fps
                    if len(faces):
                        self._last_face = faces.timestamp
                if self.recorder:
                    self.recorder.maybe_flush()
            finally:
                self._busy.release()
        with self._state:
            latest = self._latest
        return annotate(frame, latest, blur_faces=self.settings.blur_faces)

    def status(self) -> LiveStatus:
        now = self.clock()
        with self._state:
            return LiveStatus(self._received, self._analysed, 0.0 if self._start is None else now - self._start,
                              self._last_face, None if self._last_arrival is None else now - self._last_arrival,
                              self.session_id, self._ended, now - self._created)

    def alerts(self):
        return list(self.recorder.alerts) if self.recorder else []

    def finish(self) -> None:
        """Write the last rows and mark the stored session ended; later frames are ignored."""
        with self._busy:
            with self._state:
                if self._ended:
                    return
                self._ended = True
            if self.recorder:
                self.recorder.finish()
