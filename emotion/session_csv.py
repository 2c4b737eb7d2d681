"""The session CSV, the analyst's contract: one row per minute, fixed columns.

The seven emotion columns are fractions that sum to 1 when faces > 0 and are
empty when faces == 0; `dominant` is the largest of them.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from emotion.aggregate import MinuteMood, StudentMinute
from emotion.labels import EMOTIONS

SESSION_COLUMNS = ["session_id", "minute", "minute_start", "frames", "faces", "students", *EMOTIONS, "dominant"]
STUDENT_COLUMNS = ["session_id", "track_id", "minute", "faces", *EMOTIONS, "dominant"]
SUM_TOLERANCE = 0.01


class SessionCsvError(ValueError):
    """An imported CSV that breaks the contract; the message names the row and column."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def minute_rows(session_id: str, started: datetime, minutes: list[MinuteMood], minute_seconds: float = 60.0) -> list[dict]:
    rows = []
    for m in minutes:
        row = {"session_id": session_id, "minute": m.minute,
               "minute_start": _iso(started + timedelta(seconds=m.minute * minute_seconds)),
               "frames": m.frames, "faces": m.faces, "students": m.students}
        for emotion in EMOTIONS:
            row[emotion] = round(m.shares[emotion], 6) if m.shares else None
        row["dominant"] = m.dominant or ""
        rows.append(row)
    return rows


def student_rows(session_id: str, students: list[StudentMinute]) -> list[dict]:
    return [{"session_id": session_id, "track_id": s.track_id, "minute": s.minute, "faces": s.faces,
             **{e: round(s.shares[e], 6) for e in EMOTIONS}, "dominant": s.dominant} for s in students]


def to_csv_bytes(rows: list[dict], columns: list[str] = SESSION_COLUMNS) -> bytes:
    """Rows -> CSV text with exactly `columns` in order (empty cells for missing shares)."""
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).encode("utf-8")


@dataclass(frozen=True)
class ImportedSession:
    session_id: str
    started: datetime
    minutes: list[MinuteMood]


def parse_session_csv(data: bytes | str, name: str = "the CSV") -> ImportedSession:
    """Validate a session CSV and return its minutes; any problem raises SessionCsvError naming row and column."""
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data
    if not text.strip():
        raise SessionCsvError(f"{name} is empty; expected a header line with {', '.join(SESSION_COLUMNS)}")
    try:
        table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SessionCsvError(f"{name} is not a readable CSV: {exc}") from exc
    columns = [c.strip() for c in table.columns]
    if columns != SESSION_COLUMNS:
        missing = [c for c in SESSION_COLUMNS if c not in columns]
        extra = [c for c in columns if c not in SESSION_COLUMNS]
        detail = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                         f"unexpected {', '.join(extra)}" if extra else "",
                                         "columns out of order" if not missing and not extra else ""]))
        raise SessionCsvError(f"{name} has the wrong columns ({detail}); expected, in order: {', '.join(SESSION_COLUMNS)}")
    table.columns = columns
    if table.empty:
        raise SessionCsvError(f"{name} has a header but no minute rows")

    def cell_error(row: int, column: str, problem: str) -> SessionCsvError:
        return SessionCsvError(f"{name} row {row + 2}, column {column}: {problem}")

    session_ids = set(table["session_id"].str.strip())
    if len(session_ids) != 1 or "" in session_ids:
        raise SessionCsvError(f"{name} must hold one session: found session_id values {sorted(session_ids)[:5]}")
    minutes, seen, started = [], {}, None
    for i, record in table.iterrows():
        numbers = {}
        for column in ("minute", "frames", "faces", "students"):
            value = record[column].strip()
            if not value.isdigit():
                raise cell_error(i, column, f"{value!r} is not a whole number >= 0")
            numbers[column] = int(value)
        if numbers["minute"] in seen:
            raise cell_error(i, "minute", f"minute {numbers['minute']} already appears in row {seen[numbers['minute']] + 2}")
        seen[numbers["minute"]] = i
        try:
            moment = datetime.fromisoformat(record["minute_start"].strip().replace("Z", "+00:00"))
        except ValueError:
            raise cell_error(i, "minute_start", f"{record['minute_start']!r} is not an ISO-8601 time") from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        if started is None or numbers["minute"] < min(seen):
            started = moment - timedelta(minutes=numbers["minute"])
        shares = {}
        for emotion in EMOTIONS:
            value = record[emotion].strip()
            if value == "":
                continue
            try:
                share = float(value)
            except ValueError:
                raise cell_error(i, emotion, f"{value!r} is not a number") from None
            if not (0.0 <= share <= 1.0) or math.isnan(share):
                raise cell_error(i, emotion, f"{value} is not a fraction between 0 and 1")
            shares[emotion] = share
        if numbers["faces"] == 0:
            if shares:
                raise cell_error(i, "faces", "is 0 but emotion shares are given; leave them empty")
            shares = None
        else:
            if len(shares) != len(EMOTIONS):
                empty = next(e for e in EMOTIONS if e not in shares)
                raise cell_error(i, empty, f"is empty although faces = {numbers['faces']}")
            total = sum(shares.values())
            if abs(total - 1.0) > SUM_TOLERANCE:
                raise cell_error(i, "angry..surprise", f"the seven shares sum to {total:.4f}, not 1")
        mood = MinuteMood(numbers["minute"], numbers["frames"], numbers["faces"], numbers["students"], shares)
        dominant = record["dominant"].strip()
        if dominant != (mood.dominant or "") and not (shares and dominant in shares and
                                                       math.isclose(shares[dominant], shares[mood.dominant])):
            raise cell_error(i, "dominant", f"{dominant!r} is not the largest share ({mood.dominant or 'empty'})")
        minutes.append(mood)
    return ImportedSession(session_ids.pop(), started, sorted(minutes, key=lambda m: m.minute))
