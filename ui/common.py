"""Streamlit helpers shared by the dashboard and its pages (the core stays in emotion/ and training/)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from emotion.settings import database_url

PRIVACY_NOTE = ("Privacy: Class Mood stores no images or video, only numbers: per-minute class shares and "
                "per-minute numbers for pseudonymous student ids that exist only within one session.")


@st.cache_resource(show_spinner=False)
def _store(url: str):
    from emotion.store import SessionStore

    return SessionStore(url)


def get_store():
    """The session store named by the settings, or None after showing why it cannot be opened."""
    url = database_url()
    try:
        return _store(url)
    except Exception as exc:  # a bad URL or an unreachable server: say so instead of a stack trace
        st.error(f"Cannot open the session database ({url}): {exc}")
        return None


@st.cache_resource(show_spinner="Loading the emotion model…", max_entries=3)
def _classifier(path: str, modified: float):
    from emotion.classifier import EmotionClassifier

    return EmotionClassifier.load(path)


def get_classifier(path: str | Path | None = None):
    """The named model or the registry's active one (re-read on every call, so an activation is picked up);
    None after showing a clear message when it cannot be loaded."""
    from emotion.model_io import ModelFileError
    from emotion.registry import active_model_path

    path = Path(path) if path else active_model_path()
    try:
        return _classifier(str(path), path.stat().st_mtime if path.exists() else 0.0)
    except ModelFileError as exc:
        st.error(f"The emotion model cannot be used: {exc}")
        return None
