"""The teacher's view of a session's mood: alert banner, charts, download. Shared by every video source.

    show_mood(minutes, students, key="camera", markers=session.markers, minute_seconds=60, class_only=False)
"""
from __future__ import annotations

import streamlit as st

from emotion import charts
from emotion.aggregate import MinuteMood, StudentMinute
from emotion.session_csv import minute_rows, to_csv_bytes


def show_alerts(alerts) -> None:
    if alerts:
        latest = alerts[-1]
        st.error(f"**The class may need your attention** — {latest.message}", icon="⚠️")
        if len(alerts) > 1:
            with st.expander(f"All {len(alerts)} alerts of this session"):
                for alert in alerts:
                    st.write(f"minute {alert.minute + 1}: {alert.message}")


def show_mood(minutes: list[MinuteMood], students: list[StudentMinute], *, key: str, markers=(),
              minute_seconds: float = 60.0, class_only: bool = False, threshold: float | None = None) -> None:
    """Charts of a running or finished session (minute list includes the current partial minute), its lesson
    markers drawn on the timelines and the attention alert's `threshold` on the mood; in class-only mode
    without the per-student strip."""
    if not minutes:
        st.info("No frames analysed yet.")
        return
    current = minutes[-1]
    if current.too_few_faces:
        st.info(f"Minute {current.minute + 1}: {charts.TOO_FEW} ({current.students} student(s) seen so far).")
    left, right = st.columns([3, 2])
    mood = charts.mood_over_time(minutes, minute_seconds=minute_seconds, threshold=threshold)
    left.plotly_chart(charts.add_markers(mood, markers, minute_seconds), key=f"{key}-mood", width="stretch")
    right.plotly_chart(charts.current_distribution(current), key=f"{key}-now", width="stretch")
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.add_markers(charts.faces_and_students(minutes, minute_seconds=minute_seconds), markers,
                                         minute_seconds), key=f"{key}-faces", width="stretch")
    now_students = [s for s in students if s.minute == current.minute]
    if class_only:
        right.info("Class-only session: no per-student numbers are kept or shown.")
    elif now_students:
        right.plotly_chart(charts.student_strip(now_students), key=f"{key}-students", width="stretch")
    else:
        right.info("No student seen in this minute yet.")


def download_csv(session_id: str, started, minutes: list[MinuteMood], minute_seconds: float, *, key: str,
                 label: str = "Download session CSV") -> None:
    st.download_button(label, to_csv_bytes(minute_rows(session_id, started, minutes, minute_seconds)),
                       file_name=f"class-mood-{session_id}.csv", mime="text/csv", key=key)
