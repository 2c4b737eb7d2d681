"""Plotly figures shared by the dashboard, the analyst page and PNG exports (no Streamlit here)."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from emotion.aggregate import MinuteMood, StudentMinute
from emotion.labels import EMOTIONS

EMOTION_COLORS = {
    "angry": "#d62728", "disgust": "#2ca02c", "fear": "#9467bd", "happy": "#f2c029",
    "neutral": "#9e9e9e", "sad": "#1f77b4", "surprise": "#ff7f0e",
}


def minutes_frame(minutes: list[MinuteMood]) -> pd.DataFrame:
    """One row per minute: minute, frames, faces, students, the seven shares (NaN without faces), dominant."""
    return pd.DataFrame([{"minute": m.minute, "frames": m.frames, "faces": m.faces, "students": m.students,
                          **{e: (m.shares or {}).get(e) for e in EMOTIONS}, "dominant": m.dominant or ""}
                         for m in minutes],
                        columns=["minute", "frames", "faces", "students", *EMOTIONS, "dominant"])


def mood_over_time(minutes: list[MinuteMood], *, title: str = "Class mood per minute", faces_axis: bool = True) -> go.Figure:
    """Stacked area of the seven shares per minute, faces per frame on a second axis."""
    df = minutes_frame(minutes)
    fig = go.Figure()
    x = df["minute"] + 1
    for emotion in EMOTIONS:
        fig.add_trace(go.Scatter(x=x, y=df[emotion], name=emotion, stackgroup="mood", mode="lines",
                                 line={"width": 0.5, "color": EMOTION_COLORS[emotion]},
                                 hovertemplate="minute %{x}: %{y:.0%} " + emotion + "<extra></extra>"))
    if faces_axis and len(df):
        per_frame = df["faces"] / df["frames"].where(df["frames"] > 0)
        fig.add_trace(go.Scatter(x=x, y=per_frame, name="faces per frame", yaxis="y2", mode="lines+markers",
                                 line={"color": "black", "dash": "dot"}))
    fig.update_layout(title=title, xaxis_title="minute", yaxis={"title": "share", "tickformat": ".0%", "range": [0, 1]},
                      yaxis2={"title": "faces per frame", "overlaying": "y", "side": "right", "rangemode": "tozero",
                              "showgrid": False},
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 50, "b": 10}, height=380)
    return fig


def current_distribution(minute: MinuteMood | None, *, title: str = "This minute") -> go.Figure:
    shares = (minute.shares if minute and minute.shares else {e: 0.0 for e in EMOTIONS})
    fig = go.Figure(go.Bar(x=list(EMOTIONS), y=[shares[e] for e in EMOTIONS],
                           marker_color=[EMOTION_COLORS[e] for e in EMOTIONS],
                           text=[f"{shares[e]:.0%}" for e in EMOTIONS], textposition="outside"))
    subtitle = f" (minute {minute.minute + 1}, {minute.faces} faces)" if minute else ""
    fig.update_layout(title=title + subtitle, yaxis={"tickformat": ".0%", "range": [0, 1.1]}, height=320,
                      margin={"t": 50, "b": 10})
    return fig


def faces_and_students(minutes: list[MinuteMood]) -> go.Figure:
    df = minutes_frame(minutes)
    fig = go.Figure([
        go.Scatter(x=df["minute"] + 1, y=df["faces"] / df["frames"].where(df["frames"] > 0), name="faces per frame",
                   mode="lines+markers"),
        go.Scatter(x=df["minute"] + 1, y=df["students"], name="distinct students", mode="lines+markers"),
    ])
    fig.update_layout(title="Faces and students", xaxis_title="minute", yaxis={"rangemode": "tozero"}, height=300,
                      margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.3})
    return fig


def student_strip(students: list[StudentMinute]) -> go.Figure:
    """Each student's latest top emotion, one coloured tile per student."""
    latest: dict[int, StudentMinute] = {}
    for s in students:
        if s.track_id not in latest or s.minute >= latest[s.track_id].minute:
            latest[s.track_id] = s
    ordered = [latest[k] for k in sorted(latest)]
    fig = go.Figure(go.Bar(
        x=[f"#{s.track_id}" for s in ordered], y=[1] * len(ordered),
        marker_color=[EMOTION_COLORS[s.dominant] for s in ordered],
        text=[s.dominant for s in ordered], textposition="inside", insidetextanchor="middle",
        hovertemplate="student %{x}: %{text}<extra></extra>"))
    fig.update_layout(title="Students now (top emotion this minute)", yaxis={"visible": False}, height=200,
                      margin={"t": 40, "b": 10}, xaxis={"type": "category"})
    return fig
