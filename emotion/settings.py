"""Settings from environment variables, with the defaults a fresh clone runs on.

Where the app runs, root-level keys of `.streamlit/secrets.toml` are environment variables too
(Streamlit exports them when it loads the secrets; see ui/common.load_secrets), so either place works.

CLASS_MOOD_DB              SQLAlchemy URL or a SQLite file path (default: data/sessions.sqlite)
CLASS_MOOD_MODELS          folder of registered models and active.txt (default: data/models; the shipped model
                           stays in weights/)
CLASS_MOOD_CACHE           ONNX exports of models (default: ~/.cache/class-mood)
CLASS_MOOD_RUNS            training runs started from the Training page (default: ~/.cache/class-mood/runs)
CLASS_MOOD_DATASETS        datasets uploaded on the Training page (default: ~/.cache/class-mood/datasets)
CLASS_MOOD_ICE_SERVERS     JSON list of WebRTC ICE servers, e.g.
                           [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]
                           (default: none, which works on localhost and a LAN)
CLASS_MOOD_USERS           a TOML or JSON users file (see emotion/accounts.py); default: the [auth.users]
                           section of the app's secrets; no users at all means sign-in is off (localhost only)
CLASS_MOOD_REQUIRE_AUTH    1: having no users configured is an error instead of sign-in off (for servers)
CLASS_MOOD_IDLE_MINUTES    a signed-in browser session idle this long must sign in again (default: 60)
CLASS_MOOD_RETENTION_DAYS  sessions that started longer ago are deleted (default: 0, keep everything)
CLASS_MOOD_MAX_UPLOAD_MB   largest recorded class video the dashboard accepts (default: 500)
CLASS_MOOD_PRIVACY_NOTICE  what the teacher confirms having told the class before analysing (default below)
CLASS_MOOD_CLASS_ONLY      1: every session is class-only: the class's minutes are stored, no per-student rows, and
                           none are shown or exported (default: 0, the teacher chooses per session)
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"  # git ignores it: sessions and registered models stay out of the repository
DEFAULT_DB_FILE = DATA_DIR / "sessions.sqlite"
CACHE_DIR = Path.home() / ".cache" / "class-mood"
DEFAULT_PRIVACY_NOTICE = (
    "Before you start, tell the class: Class Mood estimates which of 7 emotions (angry, disgust, fear, happy, "
    "sad, surprise, neutral) the faces in the video show, and stores only numbers: the class's mix per minute, "
    "and each face's mix under an id (#1, #2, …) that is a pseudonym valid in this session only. "
    "No images, video or names are stored.")
CLASS_ONLY_PRIVACY_NOTICE = (
    "Before you start, tell the class: Class Mood estimates which of 7 emotions (angry, disgust, fear, happy, "
    "sad, surprise, neutral) the faces in the video show, and stores only numbers: the class's mix per minute. "
    "This session is class-only: nothing is stored per student, and no images, video or names are stored.")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the variable."""


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


def _folder(name: str, default: Path) -> Path:
    return Path(_raw(name) or default).expanduser()


def _number(name: str, default, kind: type = int, minimum: float = 0):
    """The variable as an int or float of at least `minimum`; `default` when it is unset."""
    raw = _raw(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a {'whole number' if kind is int else 'number'}, not {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def _flag(name: str) -> bool:
    raw = _raw(name).lower()
    if raw not in _TRUE | _FALSE:
        raise SettingsError(f"{name} must be 1 or 0 (or true/false, yes/no, on/off), not {_raw(name)!r}")
    return raw in _TRUE


def database_url() -> str:
    value = _raw("CLASS_MOOD_DB")
    if not value:
        return f"sqlite:///{DEFAULT_DB_FILE}"
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def models_dir() -> Path:
    return _folder("CLASS_MOOD_MODELS", DATA_DIR / "models")


def cache_dir() -> Path:
    return _folder("CLASS_MOOD_CACHE", CACHE_DIR)


def runs_root() -> Path:
    return _folder("CLASS_MOOD_RUNS", CACHE_DIR / "runs")


def datasets_root() -> Path:
    return _folder("CLASS_MOOD_DATASETS", CACHE_DIR / "datasets")


def ice_servers() -> list[dict]:
    raw = _raw("CLASS_MOOD_ICE_SERVERS")
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"CLASS_MOOD_ICE_SERVERS is not valid JSON: {exc}") from exc
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise SettingsError('CLASS_MOOD_ICE_SERVERS must be a JSON list of objects with "urls"')
    return servers


def users_file() -> Path | None:
    raw = _raw("CLASS_MOOD_USERS")
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise SettingsError(f"CLASS_MOOD_USERS names {path}, which is not a file")
    return path


def require_auth() -> bool:
    return _flag("CLASS_MOOD_REQUIRE_AUTH")


def idle_minutes() -> float:
    return _number("CLASS_MOOD_IDLE_MINUTES", 60.0, float, minimum=1)


def retention_days() -> int:
    """0 keeps every session."""
    return _number("CLASS_MOOD_RETENTION_DAYS", 0)


def max_upload_mb() -> int:
    return _number("CLASS_MOOD_MAX_UPLOAD_MB", 500, minimum=1)


def privacy_notice(class_only: bool = False) -> str:
    return _raw("CLASS_MOOD_PRIVACY_NOTICE") or (CLASS_ONLY_PRIVACY_NOTICE if class_only else DEFAULT_PRIVACY_NOTICE)


def class_only() -> bool:
    """Whether the school made every session class-only (the teacher cannot turn it off)."""
    return _flag("CLASS_MOOD_CLASS_ONLY")
