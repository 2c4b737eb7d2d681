"""Streamlit helpers shared by the dashboard and its pages (the core stays in emotion/ and training/)."""
from __future__ import annotations

import html
import os
import re
from pathlib import Path

import streamlit as st

from emotion.settings import SettingsError, class_only, database_url, max_upload_mb, privacy_notice, retention_days

PRIVACY_NOTE = ("Privacy: Class Mood stores no images or video, only numbers: per-minute class shares and "
                "per-minute numbers for pseudonymous student ids that exist only within one session.")
CLASS_ONLY_PRIVACY_NOTE = ("Privacy: class-only mode. Class Mood stores no images or video and nothing per student, "
                           "only the class's shares per minute.")
PRIVACY_ACKNOWLEDGED = "privacy_notice_acknowledged"  # session-state flag: once per browser session
RETENTION_CHECK_SECONDS = 3600
# What makes Markdown out of text on one line, as Streamlit renders it (CommonMark, GFM, LaTeX, directives):
MARKDOWN_SYNTAX = re.compile(r"""[\\`*~\[\]{}<>&$|@#]  # escapes, code, emphasis, links, directives, HTML, LaTeX, tables,
                                                    # mail links, headings
                               | (?<![^\W_])_ | _(?![^\W_])  # "_" except inside a word, where it is never emphasis
                               | :(?=//) | (?<=www)\.  # what turns http://... and www.... into links
                               """, re.VERBOSE | re.IGNORECASE)
LINE_START_SYNTAX = re.compile(r"^(\d*)([-+.)])")  # list items: "- x", "+ x", "1. x", "1) x"
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def plain(text) -> str:
    """User text (titles, names, file names, messages quoting them) for any element or label that renders Markdown,
    shown as typed: the characters that could start Markdown syntax are backslash-escaped (CommonMark lets any ASCII
    punctuation be), the rest stays as it is, so messages read the same in code and tests; control characters
    (line breaks too) become spaces, so nothing can start a new block. Written here because neither Streamlit nor
    markdown-it-py offers an escape function."""
    text = MARKDOWN_SYNTAX.sub(r"\\\g<0>", CONTROL.sub(" ", str(text)).strip())
    return LINE_START_SYNTAX.sub(r"\1\\\2", text)


def chart_label(text) -> str:
    """User text for a Plotly legend or hover label, which render a subset of HTML (links among it): shown as typed."""
    return html.escape(str(text))


def load_secrets() -> dict:
    """The app's secrets (.streamlit/secrets.toml), {} without any. Loading them puts their root-level
    strings and numbers into the environment, where emotion.settings reads them; booleans Streamlit
    skips are put there too, so `CLASS_MOOD_REQUIRE_AUTH = true` works."""
    if not st.secrets.load_if_toml_exists():
        return {}
    found = st.secrets.to_dict()
    for name, value in found.items():
        if name.startswith("CLASS_MOOD_") and isinstance(value, bool):
            os.environ[name] = "1" if value else "0"
    return found


@st.cache_resource(show_spinner=False)
def _store(url: str):
    from emotion.store import SessionStore

    return SessionStore(url)


@st.cache_data(ttl=RETENTION_CHECK_SECONDS, show_spinner=False)
def _delete_expired(url: str, days: int) -> int:
    """Apply the retention period at most once an hour per server process (cached by url and days)."""
    return _store(url).delete_older_than(days)


def get_store():
    """The session store named by the settings, sessions past the retention period deleted;
    None after showing why it cannot be used."""
    try:
        days = retention_days()
    except SettingsError as exc:
        st.error(str(exc))
        return None
    url = database_url()
    try:
        store = _store(url)
        if days:
            _delete_expired(url, days)
        return store
    except Exception as exc:  # a bad URL or an unreachable server: say so instead of a stack trace
        shown = re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)  # never a database password on the page
        st.error(f"Cannot open the session database ({shown}): {exc}")
        return None


def upload_limit_mb() -> int:
    """The recorded-video upload limit; Streamlit's server.maxUploadSize caps every upload, so it must not be lower."""
    limit, ceiling = max_upload_mb(), st.get_option("server.maxUploadSize")
    if limit > ceiling:
        raise SettingsError(f"CLASS_MOOD_MAX_UPLOAD_MB ({limit}) is above Streamlit's server.maxUploadSize "
                            f"({ceiling}); raise that in .streamlit/config.toml too")
    return limit


def school_class_only() -> bool:
    """CLASS_MOOD_CLASS_ONLY (every session class-only); a value that is not a flag is shown and counts as on."""
    try:
        return class_only()
    except SettingsError as exc:
        st.error(f"{exc}; class-only mode is on until it is fixed.")
        return True


def privacy_note(class_only_mode: bool) -> str:
    """The privacy line under a page's title."""
    return CLASS_ONLY_PRIVACY_NOTE if class_only_mode else PRIVACY_NOTE


def privacy_notice_acknowledged(class_only_mode: bool = False) -> bool:
    """Whether the teacher confirmed, once per browser session, telling the class what is measured;
    until then the notice and its button are shown."""
    if st.session_state.get(PRIVACY_ACKNOWLEDGED):
        return True
    st.info(privacy_notice(class_only_mode), icon="🔒")
    st.button("I have told the class: continue", key="privacy-acknowledge", type="primary",
              on_click=lambda: st.session_state.update({PRIVACY_ACKNOWLEDGED: True}))
    return False


@st.cache_resource(show_spinner="Loading the emotion model…", max_entries=3)
def _classifier(path: str, modified: float):
    from emotion.classifier import EmotionClassifier

    return EmotionClassifier.load(path)


def get_classifier(path: str | Path | None = None):
    """The named model or the registry's active one (re-read on every call, so an activation is picked up);
    None after showing a clear message when it cannot be loaded."""
    from emotion.model_io import ModelFileError
    from emotion.registry import active_model_path

    try:
        path = Path(path) if path else active_model_path()
        return _classifier(str(path), path.stat().st_mtime if path.exists() else 0.0)
    except ModelFileError as exc:
        st.error(f"The emotion model cannot be used: {plain(exc)}")
        return None


REMEMBERED = "remembered_settings"  # session state: widget key -> its last value, for pages visited in between


def remember(key: str, default) -> str:
    """A widget key whose value survives a visit to another page in the same browser session: Streamlit forgets
    the state of a widget that a run did not draw, so the last value is kept under a key of its own and put
    back when the widget is drawn again. Use as `st.slider(..., key=remember("fps", 2.0))`, without value=."""
    saved = st.session_state.setdefault(REMEMBERED, {})
    if key in st.session_state:
        saved[key] = st.session_state[key]
    else:
        st.session_state[key] = saved.get(key, default)
    return key
