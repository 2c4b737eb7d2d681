"""Recorded videos analysed in the background of the app process, so that a click, a rerun or another page
does not end them.

    jobs = VideoJobs()                       # one per app process (the dashboard caches it)
    job = jobs.start(path, classifier, SessionSettings(), store=store, title="Maths 3B", owner="tina",
                     file_name="class.mp4")
    job.progress                             # (seconds done, duration) — from any page, any rerun
    job.session.add_marker("quiz")           # a lesson marker at the video time analysed so far
    job.cancel()                             # stops after the current frame; what it had is stored

Jobs run on a small thread pool (more uploads wait their turn rather than share two cores). The video file
handed to a job is deleted when the job ends: only the session's numbers are kept. A finished job stays
listed for an hour so its owner can look at the result.
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emotion.analyze import VideoAnalysis, analyze_video
from emotion.annotate import annotate
from emotion.classifier import EmotionClassifier
from emotion.session import ClassSession, SessionSettings
from emotion.store import SessionStore
from emotion.video import VideoError

KEEP_FINISHED_SECONDS = 3600.0
PREVIEW_EVERY = 20  # frames between preview pictures


@dataclass
class VideoJob:
    id: str
    owner: str
    title: str
    file_name: str
    status: str = "waiting"  # waiting, running, done, failed, cancelled
    progress: tuple[float, float | None] = (0.0, None)  # seconds analysed, the video's duration
    message: str = ""  # why it failed, or a warning about a finished one
    analysis: VideoAnalysis | None = None
    session: ClassSession | None = None  # from when the analysis has opened it
    preview: np.ndarray | None = None  # the latest annotated frame, in memory only
    ended: float | None = None  # time.monotonic() when it stopped
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _frames: int = 0

    @property
    def running(self) -> bool:
        return self.status in ("waiting", "running")

    @property
    def fraction(self) -> float | None:
        seconds, duration = self.progress
        return min(seconds / duration, 1.0) if duration else None

    @property
    def session_id(self) -> str | None:
        return self.session.session_id if self.session else None

    def cancel(self) -> None:
        self._cancel.set()


class VideoJobs:
    """The app process's video jobs, by id; thread-safe."""

    def __init__(self, workers: int = 1):
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="video-job")
        self._jobs: dict[str, VideoJob] = {}
        self._lock = threading.Lock()

    def start(self, path: Path, classifier: EmotionClassifier, settings: SessionSettings, *,
              store: SessionStore | None, title: str, owner: str, file_name: str, blur_faces: bool = False
              ) -> VideoJob:
        """Queue the analysis of `path` (deleted when the job ends) and return its job."""
        job = VideoJob(uuid.uuid4().hex[:12], owner, title, file_name)
        with self._lock:
            self._forget_old()
            self._jobs[job.id] = job
        self._pool.submit(self._run, job, Path(path), classifier, settings, store, blur_faces)
        return job

    def get(self, job_id: str | None) -> VideoJob | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def of(self, owner: str) -> list[VideoJob]:
        """The owner's jobs, newest first."""
        with self._lock:
            return [job for job in reversed(self._jobs.values()) if job.owner == owner]

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job_id in [j.id for j in self._jobs.values() if j.ended and now - j.ended > KEEP_FINISHED_SECONDS]:
            del self._jobs[job_id]

    @staticmethod
    def _run(job: VideoJob, path: Path, classifier, settings, store, blur_faces: bool) -> None:
        def progress(seconds, duration):
            job.progress = (seconds, duration)

        def on_frame(frame, faces):
            job._frames += 1
            if job._frames % PREVIEW_EVERY == 1:
                job.preview = annotate(frame, faces, blur_faces=blur_faces)

        job.status = "running"
        try:
            job.analysis = analyze_video(path, classifier, settings, store=store, title=job.title,
                                         source_name=job.file_name, owner=job.owner, progress=progress,
                                         on_frame=on_frame, cancel=job._cancel,
                                         on_session=lambda session: setattr(job, "session", session))
            if job._cancel.is_set():
                job.status, job.message = "cancelled", f"The analysis was {job.analysis.stopped}; what it had is kept."
            elif job.analysis.stopped:
                job.status, job.message = "failed", f"The analysis stopped early: {job.analysis.stopped}."
            else:
                early = job.analysis.ended_early
                job.status, job.message = "done", f"Only part of this video was analysed: {early}." if early else ""
        except VideoError as exc:
            job.status, job.message = "failed", f"This video cannot be analysed: {exc}"
        except Exception as exc:  # shown to the user as a sentence; the stored part stays
            job.status, job.message = "failed", f"The analysis stopped: {type(exc).__name__}: {exc}"
        finally:
            path.unlink(missing_ok=True)
            job.ended = time.monotonic()
