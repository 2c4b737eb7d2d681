"""The teacher's view of a session's mood: alert banner, charts, download. Shared by every video source."""
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


def show_mood(minutes: list[MinuteMood], students: list[StudentMinute], *, key: str) -> None:
    """Charts of a running or finished session (minute list includes the current partial minute)."""
    if not minutes:
        st.info("No frames analysed yet.")
        return
    current = minutes[-1]
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.mood_over_time(minutes), key=f"{key}-mood", width="stretch")
    right.plotly_chart(charts.current_distribution(current), key=f"{key}-now", width="stretch")
    left, right = st.columns([3, 2])
    left.plotly_chart(charts.faces_and_students(minutes), key=f"{key}-faces", width="stretch")
    now_students = [s for s in students if s.minute == current.minute]
    if now_students:
        right.plotly_chart(charts.student_strip(now_students), key=f"{key}-students", width="stretch")
    else:
        right.info("No student seen in this minute yet.")


def download_csv(session_id: str, started, minutes: list[MinuteMood], minute_seconds: float, *, key: str) -> None:
    st.download_button("Download session CSV", to_csv_bytes(minute_rows(session_id, started, minutes, minute_seconds)),
                       file_name=f"class-mood-{session_id}.csv", mime="text/csv", key=key)
