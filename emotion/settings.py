"""Settings from environment variables, with the defaults a fresh clone runs on.

CLASS_MOOD_DB          SQLAlchemy URL or a SQLite file path (default: data/sessions.sqlite)
CLASS_MOOD_MODELS      folder of registered models (default: weights/)
CLASS_MOOD_ICE_SERVERS JSON list of WebRTC ICE servers, e.g.
                       [{"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]
                       (default: none, which works on localhost and a LAN)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_FILE = REPO_ROOT / "data" / "sessions.sqlite"


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the variable."""


def database_url() -> str:
    value = os.environ.get("CLASS_MOOD_DB", "").strip()
    if not value:
        return f"sqlite:///{DEFAULT_DB_FILE}"
    if "://" in value:
        return value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def ice_servers() -> list[dict]:
    raw = os.environ.get("CLASS_MOOD_ICE_SERVERS", "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"CLASS_MOOD_ICE_SERVERS is not valid JSON: {exc}") from exc
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise SettingsError('CLASS_MOOD_ICE_SERVERS must be a JSON list of objects with "urls"')
    return servers
