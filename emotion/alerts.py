"""When does the class need the teacher's attention? Judged on completed minutes, one alert per episode.

    attention_alerts(minutes, AlertRule(negative_threshold=0.5, consecutive_minutes=2))
    # [AttentionAlert(minute=3, kind="negative", minutes=4, message="Negative emotions above 50 % from minute 4
    #  for 4 minutes (up to 62 %). Pause and ask the class a question, or check in with a quick poll.")]

An episode is a run of consecutive minutes that meet the condition; it alerts once it has lasted
`consecutive_minutes`, and stays one alert (its start and length) however long it goes on.
"""
from __future__ import annotations

from dataclasses import dataclass

from emotion.aggregate import MinuteMood

SUGGESTIONS = {
    "negative": "Pause and ask the class a question, or check in with a quick poll.",
    "faces_drop": "Check whether students turned their cameras off, left, or the call's layout changed.",
}


@dataclass(frozen=True)
class AlertRule:
    negative_threshold: float = 0.5  # share of angry+disgust+fear+sad
    consecutive_minutes: int = 2
    face_drop: float = 0.4  # faces per frame falling by this fraction of the previous minutes' level


@dataclass(frozen=True)
class AttentionAlert:
    minute: int  # the episode's first minute
    kind: str  # "negative" or "faces_drop"
    message: str  # what happened and what to do, in one or two sentences
    minutes: int = 1  # how long the episode has lasted

    @property
    def key(self) -> tuple[int, str]:
        """The same for every later, longer version of one episode."""
        return self.minute, self.kind


def _episodes(flags: list[bool]) -> list[tuple[int, int]]:
    """(first index, length) of each run of True."""
    runs, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def _span(minutes: list[MinuteMood], start: int, length: int) -> str:
    first = minutes[start].minute + 1
    return f"in minute {first}" if length == 1 else f"from minute {first} for {length} minutes"


def attention_alerts(minutes: list[MinuteMood], rule: AlertRule = AlertRule()) -> list[AttentionAlert]:
    """One alert per episode of the completed `minutes` (consecutive, in order), oldest first."""
    found: list[AttentionAlert] = []
    negative = [m.negative_share is not None and m.negative_share > rule.negative_threshold for m in minutes]
    for start, length in _episodes(negative):
        if length >= rule.consecutive_minutes:
            peak = max(m.negative_share for m in minutes[start:start + length])
            found.append(AttentionAlert(
                minutes[start].minute, "negative",
                f"Negative emotions above {rule.negative_threshold:.0%} {_span(minutes, start, length)} "
                f"(up to {peak:.0%}). {SUGGESTIONS['negative']}", length))
    dropped, levels = [], []
    for i, m in enumerate(minutes):
        earlier = [p.faces / p.frames for p in minutes[max(0, i - 3):i] if p.frames]
        before = sum(earlier) / len(earlier) if earlier else 0.0
        now = m.faces / m.frames if m.frames else None
        dropped.append(bool(earlier) and now is not None and before >= 1 and now < before * (1 - rule.face_drop))
        levels.append((before, now))
    for start, length in _episodes(dropped):
        before, now = levels[start]
        found.append(AttentionAlert(
            minutes[start].minute, "faces_drop",
            f"Visible faces dropped from {before:.1f} to {now:.1f} per frame {_span(minutes, start, length)}. "
            f"{SUGGESTIONS['faces_drop']}", length))
    return sorted(found, key=lambda alert: alert.minute)
