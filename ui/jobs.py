"""The app process's background video jobs (emotion/jobs.py) on the page: one shared board, and a sidebar
line on every page while a user's recorded video is being analysed."""
from __future__ import annotations

import streamlit as st

from emotion.jobs import VideoJob, VideoJobs
from ui.common import plain


@st.cache_resource(show_spinner=False)
def video_jobs() -> VideoJobs:
    """One job board per server process, shared by every browser session (jobs outlive reruns and pages)."""
    return VideoJobs()


def describe(job: VideoJob) -> str:
    """One line on a job's state, e.g. "Analysing class.mp4: 45 % (54 of 120 s)", as plain text (the file name
    is the uploader's)."""
    seconds, duration = job.progress
    done = f": {job.fraction:.0%} ({seconds:.0f} of {duration:.0f} s)" if job.fraction is not None else \
        f": {seconds:.0f} s"
    return plain({"waiting": f"Waiting to analyse {job.file_name} (another video is being analysed)",
            "running": f"Analysing {job.file_name}{done}",
            "done": f"Analysed {job.file_name}",
            "cancelled": f"Cancelled {job.file_name}{done}",
            "failed": f"Could not finish {job.file_name}"}[job.status])


def sidebar_jobs(owner: str) -> None:
    """On every page: the user's running video analyses, refreshed while they run."""
    if not any(job.running for job in video_jobs().of(owner)):
        return

    @st.fragment(run_every=2)
    def lines() -> None:
        for job in video_jobs().of(owner):
            if job.running:
                st.caption(describe(job))
    with st.sidebar:
        lines()
