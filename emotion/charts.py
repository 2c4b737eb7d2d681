"""Plotly figures shared by the dashboard, the analyst page and PNG exports (no Streamlit here)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from emotion.aggregate import INTERVAL_LEVEL, MinuteMood, StudentMinute
from emotion.labels import EMOTIONS
from emotion.session_numbers import session_distribution

EMOTION_COLORS = {
    "angry": "#d62728", "disgust": "#2ca02c", "fear": "#9467bd", "happy": "#f2c029",
    "neutral": "#9e9e9e", "sad": "#1f77b4", "surprise": "#ff7f0e",
}


TOO_FEW = "too few faces to tell"


def minutes_frame(minutes: list[MinuteMood]) -> pd.DataFrame:
    """One row per minute: minute, frames, faces, students, the seven shares (NaN without faces), dominant,
    too_few (fewer students than a mix needs), and <emotion>_low / _high (NaN without an interval)."""
    bounds = [f"{e}_{side}" for e in EMOTIONS for side in ("low", "high")]
    return pd.DataFrame([{"minute": m.minute, "frames": m.frames, "faces": m.faces, "students": m.students,
                          **{e: (m.shares or {}).get(e) for e in EMOTIONS}, "dominant": m.dominant or "",
                          "too_few": m.too_few_faces,
                          **{f"{e}_low": (m.low or {}).get(e) for e in EMOTIONS},
                          **{f"{e}_high": (m.high or {}).get(e) for e in EMOTIONS}}
                         for m in minutes],
                        columns=["minute", "frames", "faces", "students", *EMOTIONS, "dominant", "too_few", *bounds]
                        ).astype({c: float for c in [*EMOTIONS, *bounds]})


def _interval_text(df: pd.DataFrame, emotion: str) -> list[str]:
    """Hover text per minute: the share's interval, when there is one."""
    return ["" if pd.isna(low) else f" ({low:.0%}–{high:.0%}, {INTERVAL_LEVEL:.0%} interval)"
            for low, high in zip(df[f"{emotion}_low"], df[f"{emotion}_high"])]


# Negative emotions at the bottom of the stack, so the top edge of their band is the negative share the
# attention alert watches, drawn against its threshold.
STACK_ORDER = ("angry", "disgust", "fear", "sad", "neutral", "surprise", "happy")
LAYOUT = {"legend": {"orientation": "h", "y": -0.28}, "margin": {"t": 60, "b": 90, "l": 60, "r": 60}}


def minute_axis(minute_seconds: float, minutes: int) -> dict:
    """The x axis of every timeline: minute m of the session spans m + 1 to m + 2 (markers use the same
    scale), whole-number ticks, titled with the minute's length when it is not 60 s."""
    title = "minute" if minute_seconds == 60 else f"minute (a minute here is {minute_seconds:g} s)"
    return {"title": title, "tickformat": "d", "dtick": 1 if minutes <= 15 else None, "rangemode": "normal"}


def _steps(df: pd.DataFrame, column) -> tuple[list[float], list[float]]:
    """Each minute as a flat step from its start to its end, so even the first, partial minute is drawn."""
    values = df[column] if isinstance(column, str) else column
    x = [v for m in df["minute"] for v in (m + 1, m + 2)]
    return x, [v for value in values for v in (value, value)]


def mood_over_time(minutes: list[MinuteMood], *, title: str = "Class mood per minute", faces_axis: bool = True,
                   minute_seconds: float = 60.0, threshold: float | None = None) -> go.Figure:
    """Stacked steps of the seven shares per minute (intervals on hover), faces per frame on a second axis,
    and the attention alert's threshold against the negative share when given. Minutes with too few students
    are left blank and shaded: their mix says little about the class."""
    df = minutes_frame(minutes)
    fig = go.Figure()
    shown = df[list(EMOTIONS)].where(~df["too_few"].astype(bool))
    for emotion in STACK_ORDER:
        x, y = _steps(df, shown[emotion])
        fig.add_trace(go.Scatter(x=x, y=y, name=emotion, stackgroup="mood", mode="lines",
                                 line={"width": 0.5, "color": EMOTION_COLORS[emotion]},
                                 customdata=[text for text in _interval_text(df, emotion) for _ in (0, 1)],
                                 hovertemplate="minute %{x:d}: %{y:.0%} " + emotion + "%{customdata}<extra></extra>"))
    for minute in df["minute"][df["too_few"].astype(bool)]:
        fig.add_vrect(x0=minute + 1, x1=minute + 2, fillcolor="lightgrey", opacity=0.4, line_width=0,
                      annotation_text=TOO_FEW, annotation_position="top", annotation_textangle=-90)
    if threshold is not None:
        fig.add_hline(y=threshold, line={"dash": "dash", "color": "black", "width": 1.5},
                      annotation_text=f"alert: negative above {threshold:.0%}", annotation_position="top left")
    axes = {"yaxis": {"title": "share of the class", "tickformat": ".0%", "range": [0, 1]}}
    if faces_axis and len(df):
        x, y = _steps(df, df["faces"] / df["frames"].where(df["frames"] > 0))
        fig.add_trace(go.Scatter(x=x, y=y, name="faces per frame", yaxis="y2", mode="lines",
                                 line={"color": "black", "dash": "dot"}))
        top = max(float(pd.Series(y).max(skipna=True) or 0), 1.0)
        axes["yaxis2"] = {"title": "faces per frame", "overlaying": "y", "side": "right", "showgrid": False,
                          "range": [0, top * 1.1], "tickformat": ".0f" if top >= 5 else ".1f", "tickmode": "auto",
                          "nticks": 6}
    fig.update_layout(title=title, xaxis=minute_axis(minute_seconds, len(df)), height=400, **axes, **LAYOUT)
    return fig


def _share_bars(shares: dict[str, float] | None, title: str, low: dict[str, float] | None = None,
                high: dict[str, float] | None = None) -> go.Figure:
    """One coloured bar per emotion, with the interval as an error bar when given; all zero when there is
    nothing to show."""
    shares = shares or {e: 0.0 for e in EMOTIONS}
    error = None
    if low and high:
        error = {"type": "data", "symmetric": False, "color": "#444",
                 "array": [max(high[e] - shares[e], 0) for e in EMOTIONS],
                 "arrayminus": [max(shares[e] - low[e], 0) for e in EMOTIONS]}
    fig = go.Figure(go.Bar(x=list(EMOTIONS), y=[shares[e] for e in EMOTIONS],
                           marker_color=[EMOTION_COLORS[e] for e in EMOTIONS], error_y=error,
                           text=[f"{shares[e]:.0%}" for e in EMOTIONS], textposition="outside"))
    fig.update_layout(title=title, yaxis={"tickformat": ".0%", "range": [0, 1.1]}, height=320,
                      margin={"t": 50, "b": 10})
    return fig


def current_distribution(minute: MinuteMood | None, *, title: str = "This minute") -> go.Figure:
    """The minute's mix with its intervals as error bars; empty, saying so, when too few students were seen."""
    if minute is None:
        return _share_bars(None, title)
    subtitle = f" (minute {minute.minute + 1}, {minute.faces} faces, {minute.students} students)"
    if minute.too_few_faces:
        return _share_bars(None, f"{title}: {TOO_FEW}{subtitle}")
    return _share_bars(minute.shares, title + subtitle, minute.low, minute.high)


def session_distribution_bars(minutes: list[MinuteMood], *, title: str = "Whole session") -> go.Figure:
    """The session's faces-weighted emotion mix."""
    faces = sum(m.faces for m in minutes)
    return _share_bars(session_distribution(minutes), f"{title} ({faces} faces)")


def faces_and_students(minutes: list[MinuteMood], *, minute_seconds: float = 60.0) -> go.Figure:
    df = minutes_frame(minutes)
    faces_x, faces_y = _steps(df, df["faces"] / df["frames"].where(df["frames"] > 0))
    students_x, students_y = _steps(df, "students")
    fig = go.Figure([
        go.Scatter(x=faces_x, y=faces_y, name="faces per frame", mode="lines", line={"color": "#333333"}),
        go.Scatter(x=students_x, y=students_y, name="distinct students", mode="lines",
                   line={"color": "#17becf", "dash": "dash"}),
    ])
    fig.update_layout(title="Faces and students", xaxis=minute_axis(minute_seconds, len(df)),
                      yaxis={"title": "count", "rangemode": "tozero", "tickformat": "d"}, height=320, **LAYOUT)
    return fig


def student_strip(students: list[StudentMinute]) -> go.Figure:
    """Each student's current emotion (smoothed over the last seconds of their track), one tile per student."""
    latest: dict[int, StudentMinute] = {}
    for s in students:
        if s.track_id not in latest or s.minute >= latest[s.track_id].minute:
            latest[s.track_id] = s
    ordered = [latest[k] for k in sorted(latest)]
    fig = go.Figure(go.Bar(
        x=[f"#{s.track_id}" for s in ordered], y=[1] * len(ordered),
        marker_color=[EMOTION_COLORS[s.now] for s in ordered],
        text=[s.now for s in ordered], textposition="inside", insidetextanchor="middle",
        hovertemplate="student %{x}: %{text}<extra></extra>"))
    fig.update_layout(title="Students now (emotion over the last few seconds)", yaxis={"visible": False}, height=200,
                      margin={"t": 40, "b": 10}, xaxis={"type": "category"})
    return fig


def emotion_heatmap(minutes: list[MinuteMood], *, title: str = "Emotions per minute",
                    minute_seconds: float = 60.0) -> go.Figure:
    """Minute x emotion grid of shares: where in the session each emotion was strong (blank without faces)."""
    df = minutes_frame(minutes)
    # the scale ends at the largest share seen, so that differences between minutes show; values in the cells
    top = max(float(df[list(EMOTIONS)].max().max(skipna=True) or 0), 0.05) if len(df) else 1.0
    fig = go.Figure(go.Heatmap(
        x=df["minute"] + 1.5, y=list(EMOTIONS), z=[df[e].tolist() for e in EMOTIONS], zmin=0, zmax=top,
        colorscale="YlOrRd", colorbar={"title": "share", "tickformat": ".0%"}, xgap=1, ygap=1,
        texttemplate="%{z:.0%}" if len(df) <= 30 else None,
        hovertemplate="minute %{x:d}, %{y}: %{z:.0%}<extra></extra>"))
    fig.update_layout(title=title, xaxis=minute_axis(minute_seconds, len(df)), yaxis={"autorange": "reversed"},
                      height=340, **LAYOUT)
    return fig


def student_timelines(students: list[StudentMinute], emotion: str | None = None, *,
                      title: str | None = None) -> go.Figure:
    """Track x minute grid: each student's top emotion (emotion=None) or their share of `emotion`."""
    tracks = sorted({s.track_id for s in students})
    minute_axis = list(range(min(s.minute for s in students), max(s.minute for s in students) + 1)) if students else []
    row_of, column_of = {t: i for i, t in enumerate(tracks)}, {m: i for i, m in enumerate(minute_axis)}
    z = [[None] * len(minute_axis) for _ in tracks]
    labels = [[""] * len(minute_axis) for _ in tracks]
    for s in students:
        row, column = row_of[s.track_id], column_of[s.minute]
        z[row][column] = EMOTIONS.index(s.dominant) if emotion is None else s.shares[emotion]
        labels[row][column] = s.dominant if emotion is None else f"{s.shares[emotion]:.0%} {emotion}"
    if emotion is None:  # one flat colour band per emotion index
        n = len(EMOTIONS)
        colors = {"colorscale": [[(i + edge) / n, EMOTION_COLORS[e]]
                                 for i, e in enumerate(EMOTIONS) for edge in (0, 1)],
                  "zmin": -0.5, "zmax": n - 0.5,
                  "colorbar": {"tickvals": list(range(n)), "ticktext": list(EMOTIONS), "title": "top emotion"}}
    else:
        colors = {"colorscale": "Reds", "zmin": 0, "zmax": 1, "colorbar": {"title": emotion, "tickformat": ".0%"}}
    fig = go.Figure(go.Heatmap(x=[m + 1 for m in minute_axis], y=[f"#{t}" for t in tracks], z=z, text=labels,
                               xgap=1, ygap=1, hovertemplate="student %{y}, minute %{x}: %{text}<extra></extra>",
                               **colors))
    fig.update_layout(title=title or "Students per minute" + (f": share of {emotion}" if emotion else ""),
                      xaxis_title="minute", yaxis={"type": "category", "autorange": "reversed"},
                      height=max(250, 60 + 22 * len(tracks)), margin={"t": 50, "b": 10})
    return fig


def emotion_comparison(series: list[tuple[str, list[MinuteMood]]], emotion: str, *,
                       title: str | None = None) -> go.Figure:
    """One line per session of an emotion's share per minute: (label, minutes) pairs, overlaid, each with its
    interval as a band where the minutes have one."""
    fig = go.Figure()
    for index, (label, minutes) in enumerate(series):
        df = minutes_frame(minutes)
        x, color = df["minute"] + 1, pio.templates["plotly"].layout.colorway[index % 10]
        if df[f"{emotion}_low"].notna().any():
            fig.add_trace(go.Scatter(x=pd.concat([x, x[::-1]]),
                                     y=pd.concat([df[f"{emotion}_high"], df[f"{emotion}_low"][::-1]]),
                                     fill="toself", fillcolor=color, opacity=0.2, line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=label))
        fig.add_trace(go.Scatter(x=x, y=df[emotion], name=label, mode="lines+markers", line={"color": color},
                                 legendgroup=label, customdata=_interval_text(df, emotion),
                                 hovertemplate=f"{label}<br>minute %{{x}}: %{{y:.0%}}%{{customdata}}<extra></extra>"))
    fig.update_layout(title=title or f"Share of {emotion} per minute", xaxis_title="minute",
                      yaxis={"title": "share", "tickformat": ".0%", "range": [0, 1]}, height=340,
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 50, "b": 10})
    return fig


class PngExportError(RuntimeError):
    """A chart cannot be rendered to PNG on this machine; the message says why and what would fix it."""


def png_browser() -> str | None:
    """The Chrome/Chromium kaleido renders with: BROWSER_PATH if set, else one on PATH. Never a downloaded one."""
    return os.environ.get("BROWSER_PATH") or next(
        (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None)


def png_export_problem() -> str | None:
    """Why charts cannot be saved as PNG on this machine, or None when kaleido has a browser to draw with."""
    browser = png_browser()
    if browser is None:
        return ("Charts cannot be saved as PNG here: kaleido needs Chromium or Chrome "
                "(Debian: apt-get install chromium, or set BROWSER_PATH to the browser).")
    if not Path(browser).is_file():
        return f"Charts cannot be saved as PNG here: BROWSER_PATH={browser} is not a browser executable."
    return None


def figures_png(figures: dict[str, go.Figure]) -> dict[str, bytes]:
    """Each figure as PNG bytes, at its own size, all drawn in one headless Chromium run of kaleido."""
    if problem := png_export_problem():
        raise PngExportError(problem)
    browser = png_browser()
    os.environ.setdefault("BROWSER_PATH", browser)
    with tempfile.TemporaryDirectory() as folder:
        paths = {name: Path(folder) / f"{index}.png" for index, name in enumerate(figures)}
        try:
            pio.write_images(list(figures.values()), list(paths.values()),
                             width=[fig.layout.width for fig in figures.values()],
                             height=[fig.layout.height for fig in figures.values()])
            return {name: path.read_bytes() for name, path in paths.items()}
        except Exception as exc:  # kaleido drives a browser process: anything it raises means no image
            raise PngExportError(f"Charts could not be saved as PNG with {browser}: {exc}") from exc


def add_markers(fig: go.Figure, markers, minute_seconds: float) -> go.Figure:
    """Lesson markers (emotion.markers.Marker) as labelled dashed vertical lines on a timeline figure whose x axis
    counts minutes from 1 like the ones above (minute m drawn at m + 1, a marker at 1 + seconds / minute_seconds);
    the label is escaped, as Plotly renders HTML in annotations. Returns `fig`."""
    import html  # here, so that this addition stays one block at the end of the module

    for marker in markers:
        fig.add_vline(x=1 + marker.seconds / minute_seconds, line={"dash": "dash", "color": "#333", "width": 1},
                      annotation={"text": html.escape(marker.caption), "textangle": -90, "font": {"size": 10},
                                  "hovertext": html.escape(marker.text or marker.label)},
                      annotation_position="top right")
    return fig
