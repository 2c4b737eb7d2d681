"""The session CSV, the analyst's contract: one row per minute, fixed columns.

The seven emotion columns are fractions that sum to 1 when faces > 0 and are
empty when faces == 0; `dominant` is the largest of them.
"""
from __future__ import annotations

import csv
import io
import math
import re
from itertools import zip_longest
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from emotion.aggregate import MinuteMood, StudentMinute
from emotion.labels import EMOTIONS

SESSION_COLUMNS = ["session_id", "minute", "minute_start", "frames", "faces", "students", *EMOTIONS, "dominant"]
INTERVAL_COLUMNS = [f"{e}_{side}" for e in EMOTIONS for side in ("low", "high")]
SESSION_INTERVAL_COLUMNS = [*SESSION_COLUMNS, *INTERVAL_COLUMNS]  # --intervals: each share's 90 % interval after
STUDENT_COLUMNS = ["session_id", "track_id", "minute", "faces", *EMOTIONS, "dominant"]
SUM_TOLERANCE = 0.01
SESSION_ID_LENGTH = 100
CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # a line break in an id would split its row in a CSV
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets take for the start of a formula (OWASP)
MAX_WHOLE = 2**31 - 1  # the largest INTEGER every supported database stores


class SessionCsvError(ValueError):
    """An imported CSV that breaks the contract; the message names the row and column."""


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def minute_rows(session_id: str, started: datetime, minutes: list[MinuteMood],
                minute_seconds: float = 60.0, *, intervals: bool = False) -> list[dict]:
    """One row per minute; with `intervals` also the INTERVAL_COLUMNS (empty where a minute has none)."""
    rows = []
    for m in minutes:
        row = {"session_id": session_id, "minute": m.minute,
               "minute_start": _iso(started + timedelta(seconds=m.minute * minute_seconds)),
               "frames": m.frames, "faces": m.faces, "students": m.students}
        for emotion in EMOTIONS:
            row[emotion] = round(m.shares[emotion], 6) if m.shares else None
        row["dominant"] = m.dominant or ""
        if intervals:
            for emotion in EMOTIONS:
                row[f"{emotion}_low"] = round(m.low[emotion], 6) if m.low else None
                row[f"{emotion}_high"] = round(m.high[emotion], 6) if m.high else None
        rows.append(row)
    return rows


def student_rows(session_id: str, students: list[StudentMinute]) -> list[dict]:
    return [{"session_id": session_id, "track_id": s.track_id, "minute": s.minute, "faces": s.faces,
             **{e: round(s.shares[e], 6) for e in EMOTIONS}, "dominant": s.dominant} for s in students]


def _neutralised(cell):
    """A text cell a spreadsheet would run as a formula, with a ' in front (OWASP's advice; a cell already starting
    with ' gets one more, so that `_unneutralised` is exact). Numbers are left alone: -1.5 is no formula. Written
    here: defusedcsv would replace pandas' writer and also rewrite cells holding | or %."""
    return "'" + cell if isinstance(cell, str) and cell.startswith((*FORMULA_START, "'")) else cell


def _unneutralised(cell: str) -> str:
    """The text `_neutralised` was given."""
    return cell[1:] if cell.startswith("'") and cell[1:].startswith((*FORMULA_START, "'")) else cell


def to_csv_bytes(rows: list[dict], columns: list[str] = SESSION_COLUMNS) -> bytes:
    """Rows -> CSV text with exactly `columns` in order (empty cells for missing shares); every CSV the project
    writes goes through here, so none has a text cell a spreadsheet would run as a formula."""
    return pd.DataFrame(rows, columns=columns).map(_neutralised).to_csv(index=False).encode("utf-8")


@dataclass(frozen=True)
class ImportedSession:
    session_id: str
    started: datetime
    minutes: list[MinuteMood]
    minute_seconds: float = 60.0

    @property
    def ended(self) -> datetime:
        return self.started + timedelta(seconds=(self.minutes[-1].minute + 1) * self.minute_seconds)


def parse_session_csv(data: bytes | str, name: str = "the CSV") -> ImportedSession:
    """Validate a session CSV and return its minutes; any problem raises SessionCsvError naming row and column.

    Rows are counted as a text editor or spreadsheet shows them: the header is row 1.
    """
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else data.removeprefix("\ufeff")
    records = _records(text, name)
    if not records:
        raise SessionCsvError(f"{name} is empty; expected a header line with {', '.join(SESSION_COLUMNS)}")
    header_row, header = records[0]
    header = [c.strip() for c in header]
    if header != SESSION_COLUMNS:
        column = next(i for i, (found, expected) in enumerate(zip_longest(header, SESSION_COLUMNS))
                      if found != expected)
        found = repr(header[column]) if column < len(header) else "nothing"
        expected = repr(SESSION_COLUMNS[column]) if column < len(SESSION_COLUMNS) else "no more columns"
        raise SessionCsvError(f"{name} row {header_row} (header), column {column + 1}: expected {expected}, found "
                              f"{found}; the columns must be, in order: {', '.join(SESSION_COLUMNS)}")
    if len(records) == 1:
        raise SessionCsvError(f"{name} has a header but no minute rows")

    def cell_error(row: int, column: str, problem: str) -> SessionCsvError:
        return SessionCsvError(f"{name} row {row}, column {column}: {problem}")

    first_row, (session_id, *_) = records[1]
    session_id = _unneutralised(session_id.strip())
    minutes, rows_of_minute, starts = [], {}, {}
    for row, cells in records[1:]:
        if len(cells) != len(SESSION_COLUMNS):
            if len(cells) < len(SESSION_COLUMNS):
                raise cell_error(row, SESSION_COLUMNS[len(cells)],
                                 f"missing (the row has {len(cells)} of {len(SESSION_COLUMNS)} cells)")
            raise cell_error(row, str(len(SESSION_COLUMNS) + 1),
                             f"unexpected extra cell {cells[len(SESSION_COLUMNS)]!r} "
                             f"(the row has {len(cells)} cells, expected {len(SESSION_COLUMNS)})")
        record = {column: cell.strip() for column, cell in zip(SESSION_COLUMNS, cells)}
        record["session_id"] = _unneutralised(record["session_id"])
        if not record["session_id"]:
            raise cell_error(row, "session_id", "is empty")
        if CONTROL_CHARACTER.search(record["session_id"]):
            raise cell_error(row, "session_id", f"{record['session_id']!r} has a control character")
        if len(record["session_id"]) > SESSION_ID_LENGTH:
            raise cell_error(row, "session_id", f"has {len(record['session_id'])} characters, at most "
                                                f"{SESSION_ID_LENGTH}")
        if record["session_id"] != session_id:
            raise cell_error(row, "session_id", f"{record['session_id']!r} differs from {session_id!r} in row "
                                                f"{first_row}: a session CSV holds one session")
        numbers = {}
        for column in ("minute", "frames", "faces", "students"):
            value = record[column]
            if not (value.isascii() and value.isdigit() and len(value) <= 10 and int(value) <= MAX_WHOLE):
                raise cell_error(row, column, f"{value!r} is not a whole number between 0 and {MAX_WHOLE}")
            numbers[column] = int(value)
        minute = numbers["minute"]
        if minute in rows_of_minute:
            raise cell_error(row, "minute", f"minute {minute} already appears in row {rows_of_minute[minute]}")
        rows_of_minute[minute] = row
        try:
            moment = datetime.fromisoformat(record["minute_start"].replace("Z", "+00:00"))
            starts[minute] = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        except (ValueError, OverflowError):
            raise cell_error(row, "minute_start", f"{record['minute_start']!r} is not an ISO-8601 time") from None
        shares = {}
        for emotion in EMOTIONS:
            value = record[emotion]
            if value == "":
                continue
            try:
                share = float(value)
            except ValueError:
                raise cell_error(row, emotion, f"{value!r} is not a number") from None
            if not (0.0 <= share <= 1.0):
                raise cell_error(row, emotion, f"{value} is not a fraction between 0 and 1")
            shares[emotion] = share
        if numbers["faces"] == 0:
            if shares:
                raise cell_error(row, "faces", "is 0 but emotion shares are given; leave them empty")
            shares = None
        else:
            if len(shares) != len(EMOTIONS):
                empty = next(e for e in EMOTIONS if e not in shares)
                raise cell_error(row, empty, f"is empty although faces = {numbers['faces']}")
            total = sum(shares.values())
            if abs(total - 1.0) > SUM_TOLERANCE:
                raise cell_error(row, "angry..surprise", f"the seven shares sum to {total:.4f}, not 1")
        mood = MinuteMood(minute, numbers["frames"], numbers["faces"], numbers["students"], shares)
        dominant = record["dominant"]
        if dominant != (mood.dominant or "") and not (shares and dominant in shares and
                                                       math.isclose(shares[dominant], shares[mood.dominant])):
            raise cell_error(row, "dominant", f"{dominant!r} is not the largest share ({mood.dominant or 'empty'})")
        minutes.append(mood)
    minutes.sort(key=lambda m: m.minute)
    first, last = minutes[0].minute, minutes[-1].minute
    minute_seconds = 60.0
    if last > first:
        minute_seconds = (starts[last] - starts[first]).total_seconds() / (last - first)
        if minute_seconds <= 0:
            raise cell_error(rows_of_minute[last], "minute_start",
                             f"minute {last} does not start after minute {first} (row {rows_of_minute[first]})")
    try:
        imported = ImportedSession(session_id, starts[first] - timedelta(seconds=first * minute_seconds), minutes,
                                   minute_seconds)
        imported.ended  # noqa: B018  (raises OverflowError past the year 9999)
    except OverflowError:
        raise cell_error(rows_of_minute[first], "minute_start",
                         "the session's start (minute 0) or end would fall outside the calendar") from None
    return imported


def _records(text: str, name: str) -> list[tuple[int, list[str]]]:
    """The non-blank CSV records, each with the row it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""))
    records, row = [], 1
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                records.append((row, cells))
            row = reader.line_num + 1
    except csv.Error as exc:
        raise SessionCsvError(f"{name} row {row} is not readable CSV: {exc}") from None
    return records
