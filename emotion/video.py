"""Recorded class videos, decoded with PyAV into (seconds, BGR frame) pairs."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".m4v")
# A class recording is continuous: frames more than MAX_GAP_SECONDS apart, or a video longer than
# MAX_DURATION_SECONDS, mean broken or crafted timestamps. Refusing them bounds the work by the frames that
# exist (a 2-frame file stamped 0 s and 10^9 s would otherwise be walked, and charted, minute by minute).
MAX_GAP_SECONDS = 300.0
MAX_DURATION_SECONDS = 12 * 3600.0


class VideoError(ValueError):
    """A video that cannot be analysed; the message says why in plain words."""


@dataclass(frozen=True)
class VideoInfo:
    duration: float | None  # seconds
    frame_rate: float | None
    frames: int | None  # as the container states it, may be 0/unknown
    width: int
    height: int

    def describe(self) -> str:
        parts = [f"{self.duration:.0f} s" if self.duration else "length unknown", f"{self.width}×{self.height}"]
        return ", ".join(parts + ([f"{self.frame_rate:.3g} frames/s"] if self.frame_rate else []))


def _open(source: str | Path | BinaryIO):
    """Open a video file, or an uploaded file object (`name` attribute used in messages)."""
    import av

    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise VideoError(f"video not found: {path}")
        name, size = path.name, path.stat().st_size
    else:
        name, size = Path(getattr(source, "name", "video")).name, source.seek(0, io.SEEK_END)
        source.seek(0)
    if size == 0:
        raise VideoError(f"{name} is empty (0 bytes)")
    try:
        container = av.open(str(source) if isinstance(source, Path) else source)
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc  # FFmpeg's reason without the (temporary) path
        raise VideoError(f"{name} is not a video PyAV can read ({reason})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{name} has no video stream")
    return container


def probe(source: str | Path | BinaryIO) -> VideoInfo:
    """Duration, rate and size from the container's header, without decoding (cheap even for an upload)."""
    container = _open(source)
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
    what was decoded so far; a video with no decodable frame, or with timestamps that jump by more than
    MAX_GAP_SECONDS or run past MAX_DURATION_SECONDS, raises VideoError. Frames stamped earlier than the
    previous one are skipped."""
    import av

    if every < 1 or int(every) != every:
        raise ValueError(f"every must be a whole number of at least 1, not {every!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, not {fps!r}")
    name = Path(path).name
    container = _open(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start, previous, index, next_time, yielded = None, None, 0, 0.0, 0
        try:
            for frame in container.decode(stream):
                seconds = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 25)
                start = seconds if start is None else start
                seconds -= start
                index += 1
                if previous is not None and seconds < previous:
                    continue
                if previous is not None and seconds - previous > MAX_GAP_SECONDS:
                    raise VideoError(f"{name}: its frame times jump from {previous:.1f} s to {seconds:.4g} s; the "
                                     "file's timing is broken, so it is analysed up to that point only")
                if seconds > MAX_DURATION_SECONDS:
                    raise VideoError(f"{name}: runs past {MAX_DURATION_SECONDS / 3600:.0f} hours, the longest class "
                                     "video analysed; it is analysed up to that point only")
                previous = seconds
                if fps:
                    if seconds + 1e-6 < next_time:
                        continue
                    next_time = (math.floor(seconds * fps + 1e-6) + 1) / fps  # the next due slot after this one
                elif (index - 1) % every:
                    continue
                yielded += 1
                yield seconds, frame.to_ndarray(format="bgr24")
        except (av.error.FFmpegError, ValueError) as exc:
            if isinstance(exc, VideoError):
                raise
            if yielded == 0:
                raise VideoError(f"{name}: no frame could be decoded ({exc})") from exc
            return
        if yielded == 0:
            raise VideoError(f"{name} holds no video frames")
    finally:
        container.close()
