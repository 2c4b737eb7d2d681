"""File and folder names made from what a user typed or uploaded: safe anywhere, never overwriting."""
from __future__ import annotations

import re
from pathlib import Path


def safe_name(text: str, fallback: str) -> str:
    """Letters, digits, '.', '-' and '_' only, so the name cannot leave its folder or upset a shell."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip(".-")
    return name or fallback


def unused_path(folder: Path, stem: str, suffix: str = "") -> Path:
    """folder/stem+suffix, or stem-2, stem-3 ... when that is taken."""
    candidate, number = folder / f"{stem}{suffix}", 2
    while candidate.exists():
        candidate, number = folder / f"{stem}-{number}{suffix}", number + 1
    return candidate
