"""Made-up class sessions with known numbers, stored the way the live recorder stores them."""
from __future__ import annotations

from datetime import datetime, timezone

from emotion.aggregate import MinuteMood, StudentMinute
from emotion.labels import EMOTIONS
from emotion.markers import Marker, new_marker
from emotion.store import SessionStore

STARTED = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)


def mix(**shares: float) -> dict[str, float]:
    """All seven shares: the named ones, the rest 0."""
    return {e: float(shares.get(e, 0.0)) for e in EMOTIONS}


# A 6-minute class: a calm start, no face in minute 2, a negative spell in minutes 3-4, a happy end.
CLASS_MINUTES = [
    MinuteMood(0, 20, 60, 3, mix(happy=0.6, neutral=0.3, sad=0.1)),
    MinuteMood(1, 20, 58, 3, mix(happy=0.5, neutral=0.4, surprise=0.1)),
    MinuteMood(2, 20, 0, 0, None),
    MinuteMood(3, 20, 40, 2, mix(sad=0.5, angry=0.2, fear=0.1, neutral=0.2)),
    MinuteMood(4, 20, 40, 2, mix(sad=0.45, angry=0.2, neutral=0.35)),
    MinuteMood(5, 20, 60, 3, mix(happy=0.7, neutral=0.3)),
]


def class_students(minutes: list[MinuteMood] = CLASS_MINUTES) -> list[StudentMinute]:
    """One row per student seen in a minute, each sharing the class mix (student 1 a little happier)."""
    rows = []
    for m in minutes:
        for track_id in range(1, m.students + 1):
            shares = m.shares if track_id != 1 else mix(**{**m.shares, "happy": m.shares["happy"] + 0.05,
                                                           "neutral": m.shares["neutral"] - 0.05})
            rows.append(StudentMinute(track_id, m.minute, m.faces // m.students, shares))
    return rows


def seed_session(store: SessionStore, title: str = "Maths 5b", *, started: datetime = STARTED,
                 minutes: list[MinuteMood] = CLASS_MINUTES, ended: bool = True, class_only: bool = False) -> str:
    """A stored session with minutes, students (none when `class_only`) and one alert, written minute by minute
    like a live recorder."""
    session_id = store.create_session(title=title, source_kind="camera", source_name="OBS virtual camera",
                                      started_at=started, model_name="test-model",
                                      settings={"class_only": class_only} if class_only else None)
    students = [] if class_only else class_students(minutes)
    for done in range(1, len(minutes) + 1):
        current = minutes[done - 1].minute
        store.write_minutes(session_id, minutes[:done], [s for s in students if s.minute <= current],
                            from_minute=minutes[done - 2].minute if done > 1 else 0)
    store.add_alert(session_id, 4, "negative", "Negative emotions above 50% for 2 minutes in a row")
    if ended:
        store.end_session(session_id)
    return session_id


def lesson_markers() -> list[Marker]:
    """A question in minute 1, a quiz as the negative spell starts (minute 3), a break in the happy end (minute 5)."""
    return [new_marker("question", seconds=75), new_marker("quiz", "fractions, 5 questions", seconds=185),
            new_marker("break", seconds=305)]


def seed_markers(store: SessionStore, session_id: str) -> list[Marker]:
    markers = lesson_markers()
    store.add_markers(session_id, markers)
    return markers
