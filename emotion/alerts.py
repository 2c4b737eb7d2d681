"""When does the class need the teacher's attention? Judged on completed minutes."""
from __future__ import annotations

from dataclasses import dataclass

from emotion.aggregate import MinuteMood


@dataclass(frozen=True)
class AlertRule:
    negative_threshold: float = 0.5  # share of angry+disgust+fear+sad
    consecutive_minutes: int = 2
    face_drop: float = 0.4  # faces per frame falling by this fraction of the previous minutes' level


@dataclass(frozen=True)
class AttentionAlert:
    minute: int
    kind: str  # "negative" or "faces_drop"
    message: str


def attention_alerts(minutes: list[MinuteMood], rule: AlertRule = AlertRule()) -> list[AttentionAlert]:
    """All alerts raised by the given completed minutes, one per minute and kind at most."""
    found: list[AttentionAlert] = []
    streak = 0
    for i, m in enumerate(minutes):
        negative = m.negative_share
        streak = streak + 1 if negative is not None and negative > rule.negative_threshold else 0
        if streak >= rule.consecutive_minutes:
            found.append(AttentionAlert(m.minute, "negative",
                                        f"Negative emotions above {rule.negative_threshold:.0%} for {streak} minutes "
                                        f"in a row (minute {m.minute + 1}: {negative:.0%})"))
        earlier = [p.faces / p.frames for p in minutes[max(0, i - 3):i] if p.frames]
        if earlier and m.frames:
            before, now = sum(earlier) / len(earlier), m.faces / m.frames
            if before >= 1 and now < before * (1 - rule.face_drop):
                found.append(AttentionAlert(m.minute, "faces_drop",
                                            f"Visible faces dropped from {before:.1f} to {now:.1f} per frame "
                                            f"in minute {m.minute + 1}"))
    return found
