"""Analyse a recorded class video into a session: the core of `python -m emotion analyze` and of the
dashboard's background video jobs (emotion/jobs.py).

    analysis = analyze_video("class.mp4", classifier, SessionSettings(), store=store, title="Maths 3B")
    analysis.session.aggregator.minutes()     # stored as they were analysed, every few seconds

The session is stored as the video is analysed; a video whose analysis stops early (cancelled, an error,
a killed process) keeps what it had and is listed as interrupted.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emotion.classifier import EmotionClassifier
from emotion.session import ClassSession, SessionSettings
from emotion.store import SessionStore
from emotion.video import VideoError, probe, read_frames


@dataclass(frozen=True)
class VideoAnalysis:
    """What analysing a video gave: the session (its aggregator holds the minutes, its pipeline's timer the
    stage times) and how much of the video could be decoded."""
    session: ClassSession
    duration: float | None  # as the file states it
    decoded_seconds: float  # time of the last frame read
    stored: bool  # every row reached the store (False without a store, or when it stayed busy)
    stopped: str | None = None  # why the analysis ended before the video did (cancelled, broken timing)

    @property
    def ended_early(self) -> str | None:
        """A warning when decoding stopped well before the stated end (a truncated or damaged file)."""
        if not self.duration or self.duration - self.decoded_seconds <= max(2.0, 0.05 * self.duration):
            return None
        return (f"the video could only be read up to {self.decoded_seconds:.0f} s of its {self.duration:.0f} s "
                "(the file is truncated or damaged); the numbers cover that part only")


def analyze_video(path: str | Path, classifier: EmotionClassifier, settings: SessionSettings = SessionSettings(), *,
                  store: SessionStore | None = None, title: str = "", source_name: str = "", owner: str = "",
                  progress: Callable[[float, float | None], None] | None = None,
                  on_frame: Callable | None = None, cancel: threading.Event | None = None,
                  on_session: Callable[[ClassSession], None] | None = None) -> VideoAnalysis:
    """Run the pipeline over a video file, storing the session as it goes when `store` is given;
    `progress(seconds_done, duration)` is called per frame, `on_session(session)` once the session is open
    (to add lesson markers to it). Raises VideoError for a file that cannot be
    analysed at all (nothing is stored then). When `cancel` is set, or the file turns out broken part-way,
    the analysis stops there: `stopped` says why and the session is stored as interrupted."""
    path = Path(path)
    duration = probe(path).duration
    frames = read_frames(path, every=settings.every or 1, fps=None if settings.every else settings.analysis_fps)
    first = next(frames)  # a file without one decodable frame raises here, before a session is stored
    session = ClassSession(classifier, store, settings, title=title or path.stem, source_kind="video",
                           source_name=source_name or path.name, owner=owner)
    if on_session:
        on_session(session)
    seconds, stopped, interrupted = first[0], None, True
    try:
        for seconds, frame in itertools.chain([first], frames):
            if cancel is not None and cancel.is_set():
                stopped = f"cancelled at {seconds:.0f} s of the video"
                break
            faces = session.feed(frame, seconds)
            if on_frame:
                on_frame(frame, faces)
            if progress:
                progress(seconds, duration)
        else:
            interrupted = False
    except VideoError as exc:  # broken part-way (e.g. its timestamps): keep what was analysed
        stopped = str(exc)
    finally:
        stored = session.finish(interrupted=interrupted)
    return VideoAnalysis(session, duration, seconds, stored and store is not None, stopped)
