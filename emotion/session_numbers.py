"""Whole-session numbers for the analyst: pure functions on stored minutes, shared by the page and the CLI."""
from __future__ import annotations

from dataclasses import dataclass

from emotion.aggregate import MinuteMood
from emotion.labels import EMOTIONS


@dataclass(frozen=True)
class MoodChange:
    """A jump in the class mood between two consecutive minutes that both saw faces."""

    previous: int
    minute: int
    distance: float  # total-variation distance of the two mixes: 0 = same mix, 1 = nothing in common


@dataclass(frozen=True)
class SessionSummary:
    minutes: int
    duration_seconds: float  # whole minutes from minute 0 to the last one
    mean_faces_per_frame: float | None  # None when no frame was analysed
    negative_threshold: float
    minutes_with_faces: int
    minutes_above_threshold: int  # minutes whose negative share exceeded the threshold

    @property
    def share_above_threshold(self) -> float | None:
        """Of the minutes that saw faces, the share whose negative emotions exceeded the threshold."""
        return self.minutes_above_threshold / self.minutes_with_faces if self.minutes_with_faces else None


def format_duration(seconds: float) -> str:
    """"45 s", "6 min", "1 h 05 min": a session of five 10-second minutes lasted 50 s, not "1 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def total_variation(a: dict[str, float], b: dict[str, float]) -> float:
    """Half the L1 distance of two emotion mixes: the share of the class that would have to change emotion."""
    return 0.5 * sum(abs(a[e] - b[e]) for e in EMOTIONS)


def session_distribution(minutes: list[MinuteMood]) -> dict[str, float] | None:
    """The whole session's mix, each minute weighted by its faces (a busy minute counts more); None without faces."""
    faces = sum(m.faces for m in minutes if m.shares)
    if not faces:
        return None
    return {e: sum(m.shares[e] * m.faces for m in minutes if m.shares) / faces for e in EMOTIONS}


def mood_changes(minutes: list[MinuteMood], top: int = 3, at_least: float = 0.05) -> list[MoodChange]:
    """The `top` sharpest changes between consecutive minutes (minutes without faces are skipped), largest first;
    changes under `at_least` (5 % of the class) are no change worth listing."""
    seen = [m for m in minutes if m.shares]
    changes = [MoodChange(before.minute, after.minute, total_variation(before.shares, after.shares))
               for before, after in zip(seen, seen[1:])]
    return sorted((c for c in changes if c.distance >= at_least), key=lambda c: c.distance, reverse=True)[:top]


def summarize(minutes: list[MinuteMood], negative_threshold: float, minute_seconds: float = 60.0) -> SessionSummary:
    frames = sum(m.frames for m in minutes)
    with_faces = [m for m in minutes if m.shares]
    return SessionSummary(
        minutes=len(minutes),
        duration_seconds=(max(m.minute for m in minutes) + 1) * minute_seconds if minutes else 0.0,
        mean_faces_per_frame=sum(m.faces for m in minutes) / frames if frames else None,
        negative_threshold=negative_threshold,
        minutes_with_faces=len(with_faces),
        minutes_above_threshold=sum(m.negative_share > negative_threshold for m in with_faces),
    )
