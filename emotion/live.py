"""A live class session: frames arrive from a camera, a screen grabber or a browser, at their own pace.

`LiveSession.process(frame)` is safe to call from the video thread. It analyses at
most `analysis_fps` frames per second and never queues: when the pipeline is busy
with an earlier frame, or the next analysis is not due yet, the newest frame is
returned with the latest annotations drawn on it. Results reach the page through
the session's own lock-protected state, never through Streamlit.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import numpy as np

from emotion.annotate import annotate
from emotion.classifier import EmotionClassifier
from emotion.classify import TrackRate
from emotion.faces import Faces
from emotion.session import ClassSession, SessionSettings
from emotion.store import SessionStore

RECENT_SECONDS = 10.0  # the window over which the achieved analysis rate is measured
CATCH_UP = 2  # analyses missed while the server was busy that later frames make up for (6 classes, 2 cores:
# 1.83-1.89 frames/s of 2 with no catching up, 1.96-2.00 with 2, no more with 4 but p95 latency 1.25 s)
MAX_STRETCH = 4.0  # a busy server classifies each student up to this many times less often (see _adapt)


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
    storage_problem: str | None = None  # why the rows are not being stored right now (they are retried)
    analysed_fps: float | None = None  # frames analysed per second over the last RECENT_SECONDS (None: too soon)
    classify_seconds: float = 0.0  # how often each student's face is classified now (0: every analysed frame)
    classify_slowed: bool = False  # the server is busy and classifies less often than the settings ask


class LiveSession:
    def __init__(self, classifier: EmotionClassifier, store: SessionStore | None, settings: SessionSettings, *,
                 title: str, source_kind: str, source_name: str = "", owner: str = "", clock=time.monotonic):
        """`owner`: the signed-in user the stored session belongs to ("" with sign-in off). The stored
        session opens with the first frame."""
        self.classifier, self.store, self.settings = classifier, store, settings
        self.title, self.source_kind, self.source_name, self.owner = title, source_kind, source_name, owner
        self.clock = clock
        self.session: ClassSession | None = None
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
        self._recent: collections.deque[float] = collections.deque()  # when the last frames were analysed

    @property
    def session_id(self) -> str | None:
        return self.session.session_id if self.session else None

    def minutes(self):
        """The session's minutes so far, the current partial one included ([] before the first frame)."""
        return self.session.aggregator.minutes() if self.session else []

    def student_minutes(self):
        return self.session.aggregator.student_minutes() if self.session else []

    def process(self, frame: np.ndarray) -> np.ndarray:
        """Analyse `frame` if due and the pipeline is free; return it annotated either way."""
        now = self.clock()
        with self._state:
            if self._ended:
                return frame
            if self._start is None:
                self._start = now
                self.session = ClassSession(self.classifier, self.store, self.settings, title=self.title,
                                            source_kind=self.source_kind, source_name=self.source_name,
                                            owner=self.owner)
            self._received += 1
            self._last_arrival = now
            due = now >= self._next_due
        if due and self._busy.acquire(blocking=False):
            try:
                scheduled = self._next_due if self._analysed else now
                faces = self.session.feed(frame, now - self._start)
                self._adapt(now - scheduled, self.clock() - now)
                with self._state:
                    self._latest = self.session.aggregator.smoothed(faces)  # steadier labels on the tiles
                    self._analysed += 1
                    self._recent.append(now)
                    while now - self._recent[0] > RECENT_SECONDS:
                        self._recent.popleft()
                    # on a schedule, not `now + interval`: frames arrive a little early or late, and waiting a
                    # whole interval from a late one analysed 1.6 instead of 2 frames/s of a 10 frames/s camera;
                    # frames up to CATCH_UP intervals late (the server was busy) are caught up by the next ones
                    interval = 1.0 / self.settings.analysis_fps
                    self._next_due = max(self._next_due, now - CATCH_UP * interval) + interval
                    if len(faces):
                        self._last_face = faces.timestamp
            finally:
                self._busy.release()
        with self._state:
            latest = self._latest
        return annotate(frame, latest, blur_faces=self.settings.blur_faces)

    def _adapt(self, late: float, took: float) -> None:
        """Keep the picture's pace when the server is busy: an analysis that came half an interval late or took
        most of one stretches the time between a student's classifications by a quarter (up to MAX_STRETCH); an
        on-time one shrinks it back slowly. Classification is half of an analysed frame's CPU, and the mood barely
        changes with it (benchmarks/bench_track_rate.py)."""
        rate = self.session.pipeline.classify.rate
        interval = 1.0 / self.settings.analysis_fps
        if late > 0.5 * interval or took > 0.8 * interval:
            rate.stretch = min(MAX_STRETCH, rate.stretch * 1.25)
        else:
            rate.stretch = max(1.0, rate.stretch * 0.97)

    def status(self) -> LiveStatus:
        now = self.clock()
        with self._state:
            return LiveStatus(self._received, self._analysed, 0.0 if self._start is None else now - self._start,
                              self._last_face, None if self._last_arrival is None else now - self._last_arrival,
                              self.session_id, self._ended, now - self._created,
                              self.session.storage_problem if self.session else None, self._recent_rate(now),
                              *self._classification())

    def _classification(self) -> tuple[float, bool]:
        """How often each face is classified now, and whether that is slower than the settings ask."""
        rate = self.session.pipeline.classify.rate if self.session else TrackRate(self.settings.classify_per_second)
        return rate.seconds_between, rate.stretch > 1.1

    def _recent_rate(self, now: float) -> float | None:
        """Analysed frames per second lately; None until RECENT_SECONDS of the session have passed."""
        if self._start is None or now - self._start < RECENT_SECONDS or not self._recent:
            return None
        return len([t for t in self._recent if now - t <= RECENT_SECONDS]) / RECENT_SECONDS

    def alerts(self):
        return list(self.session.alerts) if self.session else []

    def finish(self, wait: float = 10.0) -> None:
        """Write the last rows and mark the stored session ended; later frames are ignored."""
        with self._busy:
            with self._state:
                if self._ended:
                    return
                self._ended = True
            if self.session:
                self.session.finish(wait=wait)
