"""One way to open, feed and finish a class session, for every source: camera, screen, recorded video, CLI.

    settings = SessionSettings(minute_seconds=60)
    session = ClassSession(classifier, store, settings, title="Maths 3B", source_kind="video",
                           source_name="class.mp4", owner="tina")
    for seconds, frame in read_frames("class.mp4", fps=settings.analysis_fps):
        faces = session.feed(frame, seconds)
    session.add_marker("quiz", "fractions")   # from any thread, at the last frame's time unless seconds= is given
    session.finish()          # or session.finish(interrupted=True) when it was cut short

The stored session is created when the session opens (its start time is when the class began) and written
as it goes by a background writer (emotion/recorder.py), never on the thread that feeds frames: a busy
database delays the rows, never the video. Every source stores the same settings JSON. With
`class_only` no per-student rows are stored.
"""
from __future__ import annotations

import json
import math
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import numpy as np

from emotion.aggregate import DEFAULT_METHOD, METHODS, MoodAggregator
from emotion.alerts import AlertRule
from emotion.classifier import EmotionClassifier
from emotion.detect import DetectorSettings, FaceDetector
from emotion.faces import Faces
from emotion.markers import Marker, new_marker
from emotion.pipeline import FramePipeline
from emotion.recorder import SessionRecorder
from emotion.store import SessionStore
from emotion.track import Tracker

MAX_ANALYSIS_FPS = 30.0
MINUTE_SECONDS_RANGE = (5.0, 3600.0)


@dataclass(frozen=True)
class SessionSettings:
    """How a session is analysed; the same object and defaults for the camera, the screen, uploads and the CLI.
    Invalid values raise ValueError with a sentence that names the setting."""

    analysis_fps: float = 2.0  # frames analysed per second (live: at most; video: of video time)
    every: int = 0  # recorded video only: analyse every Nth frame instead of `analysis_fps` (0 = off)
    detect_every: int = 2  # the detector runs on every Nth analysed frame; same recall and mood on the bench
    # each student's face classified at most this often (0: every analysed frame); the frames in between reuse the
    # track's last probabilities. 0.5/s: the shipped model's flip views classify each face twice, and 6 live
    # classes on 2 cores reach 2 analysed frames/s only so (1.26-1.44 at 1/s); the mood and labels on the bench's
    # six videos: benchmarks/bench_track_rate.py, numbers in the README
    classify_per_second: float = 0.5
    minute_seconds: float = 60.0
    aggregation: str = DEFAULT_METHOD
    coast_seconds: float = 2.0  # a briefly missed student keeps counting this long (see emotion/track.py)
    blur_faces: bool = False  # in the displayed video only; nothing is stored either way
    detector: DetectorSettings = field(default_factory=DetectorSettings)
    alert_rule: AlertRule = field(default_factory=AlertRule)
    class_only: bool = False  # store the class's minutes only, no per-student rows

    def __post_init__(self):
        def number(name: str, low: float, high: float, *, whole: bool = False) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and value != int(value)):
                raise ValueError(f"{name} must be a {'whole ' if whole else ''}number, not {value!r}")
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"{name} must be between {low:g} and {high:g}, not {value!r}")

        number("analysis_fps", 0.1, MAX_ANALYSIS_FPS)
        number("every", 0, 10_000, whole=True)
        number("detect_every", 1, 100, whole=True)
        number("classify_per_second", 0, MAX_ANALYSIS_FPS)
        number("minute_seconds", *MINUTE_SECONDS_RANGE)
        number("coast_seconds", 0, 60)
        if self.aggregation not in METHODS:
            raise ValueError(f"aggregation must be one of {', '.join(METHODS)}, not {self.aggregation!r}")
        if not isinstance(self.class_only, bool):
            raise ValueError(f"class_only must be True or False, not {self.class_only!r}")

    def stored(self, classifier: EmotionClassifier) -> dict:
        """The settings JSON stored with every session, whatever its source (as it reads back: lists, not
        tuples)."""
        return json.loads(json.dumps({**asdict(self), "model": classifier.name}))


class ClassSession:
    """A session's pipeline, aggregator and stored record; `feed` frames in time order, then `finish`.

    `store` None analyses without storing (the CLI's --no-store, benchmarks)."""

    def __init__(self, classifier: EmotionClassifier, store: SessionStore | None, settings: SessionSettings, *,
                 title: str, source_kind: str, source_name: str = "", owner: str = "",
                 started_at: datetime | None = None, flush_seconds: float = 3.0):
        self.classifier, self.settings = classifier, settings
        self.title, self.source_kind, self.owner = title, source_kind, owner
        self.started_at = started_at or datetime.now(timezone.utc)
        # the model's confusion matrix and calibrated prior, which `corrected` and `em` need
        self.aggregator = MoodAggregator.for_model(classifier.metadata, settings.minute_seconds, settings.aggregation)
        self.pipeline = FramePipeline(classifier, self.aggregator, detector=FaceDetector(settings.detector),
                                      tracker=Tracker(coast_seconds=settings.coast_seconds),
                                      detect_every=settings.detect_every,
                                      classify_per_second=settings.classify_per_second)
        self._markers: list[Marker] = []
        self._markers_lock = threading.Lock()
        self._last_seconds = 0.0
        self.recorder: SessionRecorder | None = None
        if store is not None:
            self.recorder = SessionRecorder(
                store, uuid.uuid4().hex[:12], self.aggregator, alert_rule=settings.alert_rule,
                flush_seconds=flush_seconds, students=not settings.class_only,
                create={"title": title, "source_kind": source_kind, "source_name": source_name,
                        "started_at": self.started_at, "minute_seconds": settings.minute_seconds,
                        "model_name": classifier.name, "model_meta": {"val_accuracy": classifier.val_accuracy},
                        "settings": settings.stored(classifier), "owner": owner}).start()

    @property
    def session_id(self) -> str | None:
        return self.recorder.session_id if self.recorder else None

    @property
    def alerts(self) -> list:
        return self.recorder.alerts if self.recorder else []

    @property
    def storage_problem(self) -> str | None:
        """Why the last write failed (it is being retried), or None when storage is keeping up."""
        return self.recorder.problem if self.recorder else None

    @property
    def markers(self) -> list[Marker]:
        """The lesson markers added so far, in time order."""
        with self._markers_lock:
            return sorted(self._markers, key=lambda m: m.seconds)

    def add_marker(self, label: str, text: str = "", seconds: float | None = None) -> Marker:
        """Mark what happens in the lesson at `seconds` (default: the last frame's time); the recorder stores it
        at its next write, so this never waits for the database. MarkerError for an empty or too long label."""
        marker = new_marker(label, text, seconds=self._last_seconds if seconds is None else seconds)
        with self._markers_lock:
            self._markers.append(marker)
        if self.recorder:
            self.recorder.add_marker(marker)
        return marker

    def feed(self, frame: np.ndarray, seconds: float) -> Faces:
        """Analyse one frame taken `seconds` after the session started; no database work happens here."""
        faces = self.pipeline(frame, seconds)
        self._last_seconds = max(self._last_seconds, seconds)
        if self.recorder:
            self.recorder.poke()
        return faces

    def finish(self, *, interrupted: bool = False, wait: float = 30.0) -> bool:
        """Write the last rows and mark the stored session ended (or interrupted); True once stored.
        Waits up to `wait` seconds for a busy database, then leaves the writer retrying in the background."""
        if self.recorder is None:
            return True
        return self.recorder.finish("interrupted" if interrupted else "ended", wait=wait)
