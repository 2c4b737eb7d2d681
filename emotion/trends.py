"""One class over time: every stored session of a class name, each summed up in one row.

    points = class_trend(store, "Maths 5b", since=datetime(2024, 9, 1, tzinfo=timezone.utc))
    trend_figure(points)                          # each session's mix stacked, negative share and faces as lines
    to_csv_bytes(trend_rows(points), TREND_COLUMNS)

A class is the sessions whose title is the same name, ignoring case and surrounding blanks. No Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import plotly.graph_objects as go

from emotion.aggregate import MinuteMood
from emotion.charts import EMOTION_COLORS
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS
from emotion.session_numbers import session_distribution
from emotion.store import SessionInfo, SessionStore

TREND_COLUMNS = ["session_id", "title", "started_at", "status", "minutes", "faces", "faces_per_frame", *EMOTIONS,
                 "negative"]


@dataclass(frozen=True)
class TrendPoint:
    info: SessionInfo
    minutes: int
    faces: int
    faces_per_frame: float | None
    mix: dict[str, float] | None  # None when no face was seen

    @property
    def negative(self) -> float | None:
        return sum(self.mix[e] for e in NEGATIVE_EMOTIONS) if self.mix else None

    @property
    def label(self) -> str:
        return f"{self.info.started_at:%Y-%m-%d %H:%M}"


def same_class(title: str, name: str) -> bool:
    return title.strip().casefold() == name.strip().casefold()


def class_names(sessions: list[SessionInfo]) -> list[str]:
    """The distinct class names, as last typed, the most recently taught first."""
    names: dict[str, str] = {}
    for info in sessions:  # newest first, as the store lists them
        names.setdefault(info.title.strip().casefold(), info.title.strip())
    return list(names.values())


def trend_point(info: SessionInfo, minutes: list[MinuteMood]) -> TrendPoint:
    faces, frames = sum(m.faces for m in minutes), sum(m.frames for m in minutes)
    return TrendPoint(info, len(minutes), faces, faces / frames if frames else None, session_distribution(minutes))


def class_trend(store: SessionStore, name: str, *, owner: str | None = None, since: datetime | None = None,
                until: datetime | None = None) -> list[TrendPoint]:
    """The sessions of class `name` (of `owner`, when given) started in [since, until), oldest first."""
    sessions = [info for info in store.list_sessions(owner, title_contains=name, since=since, until=until)
                if same_class(info.title, name)]
    return [trend_point(info, store.minutes(info.id)) for info in reversed(sessions)]


def trend_rows(points: list[TrendPoint]) -> list[dict]:
    """Rows of TREND_COLUMNS (for session_csv.to_csv_bytes)."""
    return [{"session_id": p.info.id, "title": p.info.title, "started_at": p.info.started_at.isoformat(),
             "status": p.info.status, "minutes": p.minutes, "faces": p.faces,
             "faces_per_frame": None if p.faces_per_frame is None else round(p.faces_per_frame, 3),
             **{e: None if p.mix is None else round(p.mix[e], 4) for e in EMOTIONS},
             "negative": None if p.negative is None else round(p.negative, 4)} for p in points]


def trend_figure(points: list[TrendPoint], *, title: str = "Sessions of this class") -> go.Figure:
    """Each session's mix as a stacked bar (x: its start), the negative share as a line on the same axis, and
    faces per frame as a line on the right axis."""
    x = [p.label for p in points]
    fig = go.Figure()
    for emotion in EMOTIONS:
        fig.add_trace(go.Bar(x=x, y=[p.mix[emotion] if p.mix else None for p in points], name=emotion,
                             marker_color=EMOTION_COLORS[emotion],
                             hovertemplate="%{x}: %{y:.0%} " + emotion + "<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[p.negative for p in points], name="negative share", mode="lines+markers",
                             line={"color": "black", "width": 2},
                             hovertemplate="%{x}: %{y:.0%} negative<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[p.faces_per_frame for p in points], name="faces per frame", yaxis="y2",
                             mode="lines+markers", line={"color": "#555", "dash": "dot"},
                             hovertemplate="%{x}: %{y:.1f} faces per frame<extra></extra>"))
    fig.update_layout(title=title, barmode="stack", xaxis={"title": "session start (UTC)", "type": "category"},
                      yaxis={"title": "share", "tickformat": ".0%", "range": [0, 1]},
                      yaxis2={"title": "faces per frame", "overlaying": "y", "side": "right", "rangemode": "tozero",
                              "showgrid": False},
                      legend={"orientation": "h", "y": -0.3}, margin={"t": 50, "b": 10}, height=400)
    return fig
