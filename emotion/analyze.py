"""Analyse a recorded class video into a session: the core of `python -m emotion analyze` and the page's upload."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from emotion.aggregate import DEFAULT_METHOD, MoodAggregator
from emotion.classifier import EmotionClassifier
from emotion.detect import DetectorSettings, FaceDetector
from emotion.pipeline import FramePipeline
from emotion.track import Tracker
from emotion.video import probe, read_frames


@dataclass(frozen=True)
class AnalysisSettings:
    analysis_fps: float = 4.0  # frames of video analysed per second (0 = every `every`-th frame)
    every: int = 1
    detect_every: int = 2  # halves detection time; same recall and mood on the classroom bench
    minute_seconds: float = 60.0
    aggregation: str = DEFAULT_METHOD
    coast_seconds: float = 2.0  # a briefly missed student keeps counting this long (see emotion/track.py)
    detector: DetectorSettings = DetectorSettings()


def make_aggregator(classifier: EmotionClassifier, settings: AnalysisSettings) -> MoodAggregator:
    confusion = classifier.metadata.get("validation", {}).get("confusion_matrix")
    return MoodAggregator(settings.minute_seconds, settings.aggregation, confusion)


@dataclass(frozen=True)
class VideoAnalysis:
    """What analysing a video gave: the pipeline (its aggregator holds the minutes, its timer the stage
    times) and how much of the video could be decoded."""
    pipeline: FramePipeline
    duration: float | None  # as the file states it
    decoded_seconds: float  # time of the last frame read

    @property
    def ended_early(self) -> str | None:
        """A warning when decoding stopped well before the stated end (a truncated or damaged file)."""
        if not self.duration or self.duration - self.decoded_seconds <= max(2.0, 0.05 * self.duration):
            return None
        return (f"the video could only be read up to {self.decoded_seconds:.0f} s of its {self.duration:.0f} s "
                "(the file is truncated or damaged); the numbers cover that part only")


def analyze_video(path: str | Path, classifier: EmotionClassifier, settings: AnalysisSettings = AnalysisSettings(),
                  progress: Callable[[float, float | None], None] | None = None,
                  on_frame: Callable | None = None) -> VideoAnalysis:
    """Run the pipeline over a video file; `progress(seconds_done, duration)` is called per frame."""
    duration = probe(path).duration
    pipeline = FramePipeline(classifier, make_aggregator(classifier, settings),
                             detector=FaceDetector(settings.detector),
                             tracker=Tracker(coast_seconds=settings.coast_seconds),
                             detect_every=settings.detect_every)
    seconds = 0.0
    for seconds, frame in read_frames(path, every=settings.every, fps=settings.analysis_fps or None):
        faces = pipeline(frame, seconds)
        if on_frame:
            on_frame(frame, faces)
        if progress:
            progress(seconds, duration)
    return VideoAnalysis(pipeline, duration, seconds)
