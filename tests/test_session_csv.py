"""The session CSV contract through the command line: exports in the fixed column order, imports that
store everything or, for a broken file, nothing and a message naming the row and column."""
import csv
import io
import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from emotion.cli import main as cli
from emotion.labels import EMOTIONS
from emotion.session_csv import (SESSION_COLUMNS, STUDENT_COLUMNS, SessionCsvError, minute_rows, parse_session_csv,
                                 to_csv_bytes)
from tests.conftest import REPO, run_module
from tests.sessions import CLASS_MINUTES, STARTED, class_students


def read_csv(path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_export_latest_has_the_contract_columns_shares_and_empty_minutes(store, tmp_path):
    latest = store.latest()
    run_module("emotion", "sessions", "export", "--latest", "--csv", tmp_path / "latest.csv")
    columns, rows = read_csv(tmp_path / "latest.csv")
    assert columns == SESSION_COLUMNS
    assert [row["session_id"] for row in rows] == [latest.id] * len(CLASS_MINUTES)
    assert [int(row["minute"]) for row in rows] == [m.minute for m in CLASS_MINUTES]
    assert rows[3]["minute_start"] == "2024-05-07T09:03:00Z"
    for row, minute in zip(rows, CLASS_MINUTES):
        assert (int(row["frames"]), int(row["faces"]), int(row["students"])) == (minute.frames, minute.faces,
                                                                                 minute.students)
        if minute.faces == 0:
            assert [row[e] for e in EMOTIONS] == [""] * len(EMOTIONS) and row["dominant"] == ""
        else:
            assert sum(float(row[e]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-6)
            assert row["dominant"] == minute.dominant == max(EMOTIONS, key=lambda e: float(row[e]))


def test_export_by_id_with_the_per_student_csv(store, tmp_path):
    maths = next(s for s in store.list_sessions() if s.title == "Maths 5b")
    run_module("emotion", "sessions", "export", maths.id, "--csv", tmp_path / "maths.csv",
               "--students", tmp_path / "students.csv")
    columns, rows = read_csv(tmp_path / "students.csv")
    assert columns == STUDENT_COLUMNS
    expected = class_students()
    assert [(int(r["track_id"]), int(r["minute"]), r["dominant"]) for r in rows] == \
        [(s.track_id, s.minute, s.dominant) for s in expected]
    assert all(sum(float(r[e]) for e in EMOTIONS) == pytest.approx(1.0, abs=1e-6) for r in rows)
    assert read_csv(tmp_path / "maths.csv")[1][0]["session_id"] == maths.id


def test_exported_csv_imports_back_as_the_same_session(store, tmp_path):
    original = store.latest()
    run_module("emotion", "sessions", "export", original.id, "--csv", tmp_path / "history.csv")
    result = run_module("emotion", "sessions", "import", tmp_path / "history.csv", "--title", "History copy")
    assert "imported 6 minute(s)" in result.stdout
    copy = next(s for s in store.list_sessions() if s.title == "History copy")
    assert (copy.source_kind, copy.source_name, copy.status) == ("import", "history.csv", "ended")
    assert (copy.started_at, copy.minute_seconds) == (original.started_at, 60.0)
    assert copy.ended_at == original.started_at + timedelta(minutes=6)
    assert copy.settings == {"imported_session_id": original.id}
    assert store.minutes(copy.id) == CLASS_MINUTES
    assert "History copy" in run_module("emotion", "sessions", "list").stdout


def test_minute_length_and_start_survive_the_csv():
    """Sessions analysed with 10-second 'minutes', exported from minute 1 on."""
    text = to_csv_bytes(minute_rows("short", STARTED, CLASS_MINUTES[1:], minute_seconds=10.0))
    imported = parse_session_csv(text)
    assert (imported.started, imported.minute_seconds) == (STARTED, 10.0)
    assert imported.ended == STARTED + timedelta(seconds=60)
    assert imported.minutes == CLASS_MINUTES[1:]


def good_csv() -> str:
    return to_csv_bytes(minute_rows("abc123", STARTED, CLASS_MINUTES)).decode()


def edited(row: int, column: str, value: str) -> str:
    """The good CSV with one cell changed; rows are counted like a spreadsheet (header = row 1)."""
    rows = list(csv.reader(io.StringIO(good_csv())))
    rows[row - 1][SESSION_COLUMNS.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def with_duplicated_row(row: int) -> str:
    lines = good_csv().splitlines(keepends=True)
    return "".join([*lines, lines[row - 1]])


BAD_CSVS = {
    "empty file": ("", r"is empty"),
    "wrong columns": (good_csv().replace("minute_start", "start", 1),
                      r"row 1 \(header\), column 3: expected 'minute_start'"),
    "missing column": (good_csv().replace(",dominant", "", 1), r"row 1 \(header\), column 14: expected 'dominant'"),
    "non-numeric cell": (edited(3, "faces", "many"), r"row 3, column faces: 'many' is not a whole number"),
    "non-numeric share": (edited(2, "sad", "ten percent"), r"row 2, column sad: 'ten percent' is not a number"),
    "share above 1": (edited(2, "happy", "1.5"), r"row 2, column happy: 1.5 is not a fraction"),
    "shares not summing to 1": (edited(2, "happy", "0.9"), r"row 2, column angry..surprise: .* sum to 1.3000"),
    "shares without faces": (edited(4, "happy", "1.0"), r"row 4, column faces: is 0 but emotion shares"),
    "duplicated minute": (with_duplicated_row(3), r"row 8, column minute: minute 1 already appears in row 3"),
    "bad dominant": (edited(2, "dominant", "sad"), r"row 2, column dominant: 'sad' is not the largest share"),
    "unknown dominant": (edited(2, "dominant", "bored"), r"row 2, column dominant: 'bored'"),
    "short row": (good_csv().replace(",happy\n", "\n", 1), r"row 2, column dominant: missing"),
    "bad time": (edited(5, "minute_start", "yesterday"), r"row 5, column minute_start: 'yesterday' is not an ISO"),
    "two sessions": (edited(6, "session_id", "other"), r"row 6, column session_id: 'other' differs"),
    "long session id": (edited(2, "session_id", "x" * 101), r"row 2, column session_id: has 101 characters, at most 100"),
    "control character": (good_csv().replace("abc123", '"a\rb"', 1), r"row 2, column session_id: 'a\\rb' has a contr"),
}


@pytest.mark.parametrize("name", BAD_CSVS)
def test_bad_csv_is_refused_naming_row_and_column_and_stores_nothing(name, store, tmp_path, capsys):
    text, message = BAD_CSVS[name]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    before = len(store.list_sessions())
    assert cli(["sessions", "import", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: bad.csv ") and re.search(message, error), error
    assert len(store.list_sessions()) == before


@pytest.mark.parametrize("session_id", ["=1+1", "+44 20", "-2", "@SUM(A1:A9)", '=HYPERLINK("http://host", "x")',
                                        "'=x", "'abc"])
def test_formula_cells_are_neutralised_and_import_back(session_id):
    data = to_csv_bytes(minute_rows(session_id, STARTED, CLASS_MINUTES))
    ids = [row[0] for row in csv.reader(io.StringIO(data.decode(), newline=""))][1:]
    assert ids == [("'" + session_id) if session_id[0] in "=+-@'" else session_id] * len(CLASS_MINUTES)
    assert parse_session_csv(data).session_id == session_id


def test_only_text_cells_are_neutralised_never_numbers():
    rows = [{"number": -1.5, "whole": -3, "text": "-1.5", "formula": "=1", "tab": "\t=1", "plain": "a=1"}]
    assert to_csv_bytes(rows, list(rows[0])).decode().splitlines()[1] == "-1.5,-3,'-1.5,'=1,'\t=1,a=1"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=100)
       .filter(lambda text: text == text.strip()))
def test_any_session_id_round_trips_and_never_starts_a_formula(session_id):
    data = to_csv_bytes(minute_rows(session_id, STARTED, CLASS_MINUTES[:2]))
    assert all(row[0][0] not in "=+-@\t\r" for row in csv.reader(io.StringIO(data.decode(), newline="")))
    assert parse_session_csv(data).session_id == session_id


def test_good_csv_parses_to_the_minutes():
    imported = parse_session_csv(good_csv().encode("utf-8-sig"))
    assert (imported.session_id, imported.started, imported.minutes) == ("abc123", STARTED, CLASS_MINUTES)


CELLS = st.one_of(st.sampled_from(["", "0", "1", "0.5", "1e-3", "-1", "nan", "inf", "happy", "2024-05-06T09:00:00Z",
                                   "abc", "99999999999", "²", " 3 ", '"', "\x00"]), st.text(max_size=8))
ROWS = st.lists(st.lists(CELLS, min_size=12, max_size=16), max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.binary().map(bytes),
                 ROWS.map(lambda rows: "\n".join([",".join(SESSION_COLUMNS), *(",".join(r) for r in rows)]))))
def test_any_text_is_either_a_session_or_a_session_csv_error(data):
    try:
        parse_session_csv(data)
    except SessionCsvError:
        pass


def test_the_sessions_page_parses_an_upload_once_and_refuses_one_over_20_mb(database, monkeypatch):
    from emotion import session_csv

    parsed, parse = [], session_csv.parse_session_csv
    monkeypatch.setattr(session_csv, "parse_session_csv", lambda data, name: parsed.append(name) or parse(data, name))
    at = AppTest.from_file(str(REPO / "pages/2_Sessions.py"), default_timeout=60).run()
    good = to_csv_bytes(minute_rows("lab", STARTED, CLASS_MINUTES))
    at.file_uploader(key="upload").set_value(("lab.csv", good, "text/csv")).run()
    at.slider(key="threshold").set_value(0.3).run()  # reruns of the page ...
    at.selectbox(key="student-emotion").set_value("happy").run()
    assert parsed == ["lab.csv"]  # ... do not parse the upload again
    assert f"lab.csv: {len(CLASS_MINUTES)} valid minute(s), shown below." in [s.value for s in at.success]
    at.file_uploader(key="upload").set_value(("big.csv", good + b"\n" * (20 << 20), "text/csv")).run()
    assert not at.exception and parsed == ["lab.csv"]
    assert "Not imported: big.csv is 20.0 MB, over the 20 MB limit for a session CSV" in at.error[0].value
