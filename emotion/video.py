"""Recorded class videos, decoded with PyAV into (seconds, BGR frame) pairs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")


class VideoError(ValueError):
    """A video that cannot be analysed; the message says why in plain words."""


@dataclass(frozen=True)
class VideoInfo:
    duration: float | None  # seconds
    frame_rate: float | None
    frames: int | None  # as the container states it, may be 0/unknown
    width: int
    height: int


def _open(path: str | Path):
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError(f"{path.name} is empty (0 bytes)")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path.name} is not a video PyAV can read ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path.name} has no video stream")
    return container


def probe(path: str | Path) -> VideoInfo:
    container = _open(path)
    try:
        stream = container.streams.video[0]
        duration = float(stream.duration * stream.time_base) if stream.duration else (
            container.duration / 1_000_000 if container.duration else None)
        rate = float(stream.average_rate) if stream.average_rate else None
        return VideoInfo(duration, rate, stream.frames or None, stream.codec_context.width, stream.codec_context.height)
    finally:
        container.close()


def read_frames(path: str | Path, *, every: int = 1, fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (seconds from the first frame, BGR frame) for every `every`-th frame, or at most
    `fps` frames per second of video when given. A damaged stretch ends the video with
    what was decoded so far; a video with no decodable frame raises VideoError."""
    import av

    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start, index, next_time, yielded = None, 0, 0.0, 0
        try:
            for frame in container.decode(stream):
                seconds = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                start = seconds if start is None else start
                seconds -= start
                index += 1
                if fps:
                    if seconds + 1e-6 < next_time:
                        continue
                    next_time += 1.0 / fps
                    while next_time <= seconds:
                        next_time += 1.0 / fps
                elif (index - 1) % every:
                    continue
                yielded += 1
                yield seconds, frame.to_ndarray(format="bgr24")
        except (av.error.FFmpegError, ValueError) as exc:
            if yielded == 0:
                raise VideoError(f"{Path(path).name}: no frame could be decoded ({exc})") from exc
            return
        if yielded == 0:
            raise VideoError(f"{Path(path).name} holds no video frames")
    finally:
        container.close()
