"""Lesson markers: what happened in the lesson (a new topic, a question, a quiz, a break, a note) at a session time.

    marker = new_marker("quiz", "fractions, 5 questions", seconds=754.0)
    store.add_marker(session_id, marker)               # or session.add_marker("quiz", ...) while a class runs
    markers = parse_markers_csv(Path("lesson.csv").read_bytes(), "lesson.csv")   # time,label[,text]
    mood_around(minutes, marker, minute_seconds=60)    # the mix in the minutes before and after it
    before_after_figure(mood_around(...))              # those two mixes side by side

Labels and texts are user text: control characters become spaces, lengths are bounded, and they are stored and
shown as plain text. No Streamlit here.
"""
from __future__ import annotations

import csv
import html
import io
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import plotly.graph_objects as go

from emotion.aggregate import MinuteMood
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS
from emotion.session_csv import FORMULA_START
from emotion.session_numbers import session_distribution, total_variation

LABELS = ("new topic", "question", "quiz", "break")  # the ready labels offered with one click
NOTE = "note"  # the label of a marker the teacher typed
LABEL_LENGTH = 40
TEXT_LENGTH = 200
CAPTION_LENGTH = 40  # how much of a marker a chart's line label shows
MAX_SECONDS = 7 * 24 * 3600.0  # later than a week into a session is a typo, not a lesson
MAX_MARKERS_CSV_BYTES = 1 << 20
MARKER_COLUMNS = ["session_id", "time", "seconds", "minute", "label", "text"]  # `sessions markers --csv`
IMPORT_COLUMNS = ("time", "label", "text")  # `analyze --markers`: the header is optional, text may be left out
SPACES = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")  # [h:]mm:ss[.f]


class MarkerError(ValueError):
    """A marker that cannot be stored; the message says which part and why."""


@dataclass(frozen=True)
class Marker:
    seconds: float  # session time: since the class started (live) or into the video (recorded)
    label: str
    text: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def caption(self) -> str:
        """The line label on charts: the label, and as much of the text as fits."""
        caption = f"{self.label}: {self.text}" if self.text else self.label
        return caption if len(caption) <= CAPTION_LENGTH else caption[:CAPTION_LENGTH - 1] + "…"

    def minute(self, minute_seconds: float) -> int:
        return int(self.seconds // minute_seconds)


def clean_text(text, what: str, limit: int, *, required: bool = False) -> str:
    """User text as stored: runs of blanks and control characters as one space, trimmed, at most `limit`
    characters (refused beyond, never cut silently)."""
    text = SPACES.sub(" ", str(text or "")).strip()
    if required and not text:
        raise MarkerError(f"a marker's {what} cannot be empty")
    if len(text) > limit:
        raise MarkerError(f"a marker's {what} has at most {limit} characters (this one has {len(text)})")
    return text


def check_seconds(seconds) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise MarkerError(f"a marker's time must be a number of seconds, not {seconds!r}")
    if not 0 <= seconds <= MAX_SECONDS:
        raise MarkerError(f"a marker's time must be between 0 and {MAX_SECONDS:.0f} s, not {seconds:g}")
    return float(seconds)


def new_marker(label: str, text: str = "", *, seconds: float, marker_id: str | None = None) -> Marker:
    """A checked marker (MarkerError names what is wrong)."""
    return Marker(check_seconds(seconds), clean_text(label, "label", LABEL_LENGTH, required=True),
                  clean_text(text, "text", TEXT_LENGTH), **({"id": marker_id} if marker_id else {}))


def format_time(seconds: float) -> str:
    """Session time as m:ss, or h:mm:ss from an hour on."""
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def parse_time(text: str) -> float:
    """Seconds from "754", "754.5", "12:34" or "1:02:03"."""
    text = text.strip()
    match = CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        if (hours is not None and int(minutes) >= 60) or float(seconds) >= 60:
            raise MarkerError(f"{text!r} is not a time: minutes and seconds go up to 59")
        return check_seconds(int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds))
    try:
        return check_seconds(float(text))
    except ValueError:
        raise MarkerError(f"{text!r} is not a time (seconds such as 754, or m:ss such as 12:34)") from None


def parse_markers_csv(data: bytes, name: str = "the markers CSV") -> list[Marker]:
    """Markers from a CSV of time,label[,text] (a header naming those columns is optional; the columns of
    `sessions markers --csv` are read too). Raises MarkerError naming the row and column of any problem."""
    if len(data) > MAX_MARKERS_CSV_BYTES:
        raise MarkerError(f"{name} is {len(data) / 2**20:.1f} MB; a markers CSV has at most 1 MB")
    text = data.decode("utf-8-sig", errors="replace")
    try:
        records = [(row, cells) for row, cells in enumerate(csv.reader(io.StringIO(text, newline="")), 1)
                   if any(cell.strip() for cell in cells)]
    except csv.Error as exc:
        raise MarkerError(f"{name} is not readable CSV: {exc}") from None
    if not records:
        raise MarkerError(f"{name} is empty; expected rows of time,label[,text], e.g. 12:30,quiz,fractions")
    columns = list(IMPORT_COLUMNS)
    first = [cell.strip().lower() for cell in records[0][1]]
    if "time" in first or "label" in first:  # a header
        unknown = [c for c in first if c not in MARKER_COLUMNS]
        missing = [c for c in ("time", "label") if c not in first]
        if unknown or missing:
            raise MarkerError(f"{name} row 1 (header): " + (f"unknown column {unknown[0]!r}" if unknown else
                              f"no {missing[0]!r} column") + "; the columns are time, label and optionally text")
        columns, records = first, records[1:]
    markers = []
    for row, cells in records:
        if len(cells) > len(columns):
            raise MarkerError(f"{name} row {row}: {len(cells)} cells, expected at most {len(columns)} "
                              f"({', '.join(columns)}); put a text with commas in double quotes")
        record = dict(zip(columns, cells))
        try:
            if not record.get("time", "").strip():
                raise MarkerError("the time is empty")
            markers.append(new_marker(_unquoted(record.get("label", "")), _unquoted(record.get("text", "")),
                                      seconds=parse_time(_unquoted(record["time"]))))
        except MarkerError as exc:
            raise MarkerError(f"{name} row {row}: {exc}") from None
    return markers


def _unquoted(cell: str) -> str:
    """A cell as `to_csv_bytes` wrote it, without the ' it puts before what a spreadsheet would run."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith((*FORMULA_START, "'")) else cell


def marker_rows(session_id: str, markers: list[Marker], minute_seconds: float) -> list[dict]:
    """Rows of MARKER_COLUMNS, for session_csv.to_csv_bytes (which neutralises formula cells)."""
    return [{"session_id": session_id, "time": format_time(m.seconds), "seconds": round(m.seconds, 1),
             "minute": m.minute(minute_seconds), "label": m.label, "text": m.text} for m in markers]


@dataclass(frozen=True)
class MoodAround:
    """The class mix in the minutes before a marker and from it on (each None when no face was seen)."""
    marker: Marker
    before_minutes: tuple[int, ...]
    after_minutes: tuple[int, ...]
    before: dict[str, float] | None
    after: dict[str, float] | None

    @property
    def change(self) -> float | None:
        """Share of the class mix that changed (total variation), None when a side has no faces."""
        return total_variation(self.before, self.after) if self.before and self.after else None

    @staticmethod
    def negative(mix: dict[str, float] | None) -> float | None:
        return sum(mix[e] for e in NEGATIVE_EMOTIONS) if mix else None


def mood_around(minutes: list[MinuteMood], marker: Marker, minute_seconds: float, span: int = 2) -> MoodAround:
    """Before: the `span` minutes before the one the marker falls in; after: that minute and the `span - 1`
    after it. Each side's mix weights its minutes by their faces (as the whole-session mix does)."""
    at = marker.minute(minute_seconds)
    before = [m for m in minutes if at - span <= m.minute < at]
    after = [m for m in minutes if at <= m.minute < at + span]
    return MoodAround(marker, tuple(m.minute for m in before), tuple(m.minute for m in after),
                      session_distribution(before), session_distribution(after))


def before_after_figure(around: MoodAround) -> go.Figure:
    """The mix before and after one marker as bars side by side, per emotion."""
    fig = go.Figure([go.Bar(x=list(EMOTIONS), y=[(mix or {}).get(e) for e in EMOTIONS], name=name,
                            marker_color=color, hovertemplate="%{x}: %{y:.0%} " + name + "<extra></extra>")
                     for name, mix, color in (("before", around.before, "#9e9e9e"),
                                              ("after", around.after, "#1f77b4"))])
    fig.update_layout(title=f"Before and after {html.escape(around.marker.caption)} "
                            f"({format_time(around.marker.seconds)})", barmode="group",
                      yaxis={"title": "share", "tickformat": ".0%", "range": [0, 1]}, height=300,
                      margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig
