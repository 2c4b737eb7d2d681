"""The session store on real databases: live-style writes read back, rename and delete, version-1 and
version-2 files migrated, a recorder killed mid-class, search by class name and date, uploads that are stored
already, and the same round trips on PostgreSQL when one is configured."""
import json
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from emotion.markers import new_marker
from emotion.session_csv import minute_rows, parse_session_csv, to_csv_bytes
from emotion.store import INTERVAL_NAMES, MIGRATIONS, SCHEMA_VERSION, SessionNotFound, SessionStore
from tests.conftest import REPO, postgres_schema
from tests.sessions import CLASS_MINUTES, STARTED, class_students, seed_session



@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """An empty store: a SQLite file, or a fresh schema on the PostgreSQL server named by CLASS_MOOD_TEST_PG_URL."""
    if request.param == "sqlite":
        yield SessionStore(f"sqlite:///{tmp_path / 'sessions.sqlite'}")
        return
    with postgres_schema() as url:
        pg_store = SessionStore(url)
        try:
            yield pg_store
        finally:
            pg_store.engine.dispose()


def test_live_writes_read_back(store):
    session_id = seed_session(store, ended=False)
    info = store.get(session_id)
    assert (info.title, info.source_kind, info.status, info.model_name) == ("Maths 5b", "camera", "live", "test-model")
    assert info.started_at == STARTED and info.ended_at is None
    assert store.minutes(session_id) == CLASS_MINUTES
    assert store.student_minutes(session_id) == class_students()
    assert [(a.minute, a.kind) for a in store.alerts(session_id)] == [(4, "negative")]

    store.end_session(session_id)
    ended = store.get(session_id)
    assert ended.status == "ended" and ended.ended_at >= ended.started_at
    assert store.schema_version() == SCHEMA_VERSION == 3


def test_a_rewritten_current_minute_replaces_the_earlier_one(store):
    session_id = store.create_session(title="Live", source_kind="camera")
    first = CLASS_MINUTES[0]
    store.write_minutes(session_id, [replace(first, frames=5, faces=10)], class_students([replace(first, faces=10)]))
    store.write_minutes(session_id, [first], class_students([first]), from_minute=0)
    store.write_minutes(session_id, CLASS_MINUTES[:2], class_students(CLASS_MINUTES[:2]), from_minute=1)
    assert store.minutes(session_id) == CLASS_MINUTES[:2]
    assert store.student_minutes(session_id) == class_students(CLASS_MINUTES[:2])


def test_times_are_kept_as_instants_whatever_their_zone(store):
    berlin = timezone(timedelta(hours=2))
    early = store.create_session(title="Early", source_kind="video",
                                 started_at=datetime(2024, 5, 6, 10, 0, tzinfo=berlin))
    late = store.create_session(title="Late", source_kind="video",
                                started_at=datetime(2024, 5, 6, 8, 30, tzinfo=timezone.utc))
    assert store.get(early).started_at == datetime(2024, 5, 6, 8, 0, tzinfo=timezone.utc)
    assert [s.id for s in store.list_sessions()] == [late, early]
    assert store.latest().id == late


def test_titles_are_trimmed_and_fit_every_database(store):
    assert store.get(store.create_session(title="   ", source_kind="camera")).title == "Untitled session"
    assert len(store.get(store.create_session(title="y" * 300, source_kind="camera")).title) == 200


def test_rename_and_delete(store):
    kept, doomed = seed_session(store, "Kept"), seed_session(store, "Doomed", started=STARTED + timedelta(hours=1))
    store.rename(doomed, "  Renamed  ")
    assert store.get(doomed).title == "Renamed"
    with pytest.raises(ValueError, match="empty"):
        store.rename(doomed, "   ")
    with pytest.raises(ValueError, match="at most 200"):
        store.rename(doomed, "x" * 201)
    with pytest.raises(SessionNotFound):
        store.rename("nosuchsession", "Title")

    store.delete(doomed)
    assert [s.id for s in store.list_sessions()] == [kept]
    assert store.minutes(doomed) == [] and store.student_minutes(doomed) == [] and store.alerts(doomed) == []
    assert store.minutes(kept) == CLASS_MINUTES and len(store.alerts(kept)) == 1
    with pytest.raises(SessionNotFound):
        store.delete(doomed)
    with pytest.raises(SessionNotFound):
        store.get(doomed)


VERSION_1_DDL = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE sessions (
    id VARCHAR(32) PRIMARY KEY, title VARCHAR(200) NOT NULL, source_kind VARCHAR(20) NOT NULL,
    source_name VARCHAR(500) NOT NULL, started_at DATETIME NOT NULL, ended_at DATETIME, last_write_at DATETIME,
    status VARCHAR(20) NOT NULL, minute_seconds FLOAT NOT NULL);
CREATE TABLE minutes (
    session_id VARCHAR(32) NOT NULL REFERENCES sessions (id), minute INTEGER NOT NULL, frames INTEGER NOT NULL,
    faces INTEGER NOT NULL, students INTEGER NOT NULL, angry FLOAT, disgust FLOAT, fear FLOAT, happy FLOAT,
    neutral FLOAT, sad FLOAT, surprise FLOAT, PRIMARY KEY (session_id, minute));
INSERT INTO sessions VALUES ('v1session', 'Old class', 'video', 'class.mp4', '2023-09-01 08:00:00.000000',
                             '2023-09-01 08:02:00.000000', '2023-09-01 08:02:00.000000', 'ended', 60.0);
INSERT INTO minutes VALUES ('v1session', 0, 20, 40, 2, 0.1, 0.0, 0.0, 0.6, 0.3, 0.0, 0.0);
INSERT INTO minutes VALUES ('v1session', 1, 20, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""


@pytest.fixture
def version_1_file(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(VERSION_1_DDL)
    return path


def table_columns(path, table: str) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def test_version_1_file_is_migrated_without_losing_sessions(version_1_file):
    store = SessionStore(f"sqlite:///{version_1_file}")
    assert store.schema_version() == SCHEMA_VERSION
    info = store.get("v1session")
    assert (info.title, info.source_name, info.status) == ("Old class", "class.mp4", "ended")
    assert info.started_at == datetime(2023, 9, 1, 8, 0, tzinfo=timezone.utc)
    assert (info.model_name, info.model_meta, info.settings, info.owner) == ("", {}, {}, "")
    old_minutes = store.minutes("v1session")
    assert [(m.minute, m.faces, m.dominant) for m in old_minutes] == [(0, 40, "happy"), (1, 0, None)]

    store.write_minutes("v1session", old_minutes, class_students(CLASS_MINUTES[:1]))
    store.add_alert("v1session", 0, "faces_drop", "Visible faces dropped")
    assert store.student_minutes("v1session") == class_students(CLASS_MINUTES[:1])
    assert len(store.alerts("v1session")) == 1
    new_id = seed_session(store)
    assert store.minutes(new_id) == CLASS_MINUTES
    store.add_markers("v1session", [new_marker("quiz", seconds=30)])
    assert [m.label for m in store.markers("v1session")] == ["quiz"]
    assert SessionStore(f"sqlite:///{version_1_file}").schema_version() == SCHEMA_VERSION  # opening again: no change


@pytest.fixture
def version_2_file(tmp_path):
    """A file as Class Mood wrote it before lesson markers and share intervals: schema 2, with a seeded session."""
    path = tmp_path / "v2.sqlite"
    seed_session(SessionStore(f"sqlite:///{path}"), "Before markers")
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE markers")
        for name in INTERVAL_NAMES:
            db.execute(f"ALTER TABLE minutes DROP COLUMN {name}")
        db.execute("UPDATE schema_version SET version = 2")
    return path


def test_version_2_file_is_migrated_to_markers_without_losing_sessions(version_2_file):
    assert "markers" not in table_names(version_2_file)
    store = SessionStore(f"sqlite:///{version_2_file}")
    assert store.schema_version() == 3 and "markers" in table_names(version_2_file)
    assert set(INTERVAL_NAMES) <= set(table_columns(version_2_file, "minutes"))
    (info,) = store.list_sessions()
    assert info.title == "Before markers" and not info.class_only
    assert store.minutes(info.id) == CLASS_MINUTES and store.student_minutes(info.id) == class_students()
    assert len(store.alerts(info.id)) == 1 and store.markers(info.id) == []
    store.add_markers(info.id, [new_marker("new topic", "fractions", seconds=125)])
    assert [(m.seconds, m.label, m.text) for m in store.markers(info.id)] == [(125, "new topic", "fractions")]
    store.delete(info.id)  # a session's markers go with it
    with sqlite3.connect(version_2_file) as db:
        assert db.execute("SELECT COUNT(*) FROM markers").fetchone() == (0,)


def table_names(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_a_failed_migration_leaves_the_file_as_it_was(version_1_file, monkeypatch):
    monkeypatch.setitem(MIGRATIONS, 2, [*MIGRATIONS[2], "ALTER TABLE no_such_table ADD COLUMN x INTEGER"])
    with pytest.raises(sa.exc.OperationalError):
        SessionStore(f"sqlite:///{version_1_file}")
    assert "model_name" not in table_columns(version_1_file, "sessions")
    assert table_columns(version_1_file, "student_minutes") == []
    with sqlite3.connect(version_1_file) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]

    monkeypatch.undo()
    assert SessionStore(f"sqlite:///{version_1_file}").get("v1session").title == "Old class"


def test_databases_that_are_not_ours_or_are_newer_are_refused(tmp_path):
    foreign = tmp_path / "foreign.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE sessions (id INTEGER)")
    with pytest.raises(RuntimeError, match="not Class Mood's"):
        SessionStore(f"sqlite:///{foreign}")
    newer = tmp_path / "newer.sqlite"
    SessionStore(f"sqlite:///{newer}")
    with sqlite3.connect(newer) as db:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(RuntimeError, match="newer Class Mood"):
        SessionStore(f"sqlite:///{newer}")


# A class followed live: three faces per frame (two happy, one neutral), 0.5 s of class per flush,
# 1-second "minutes"; prints what each flush has written.
LIVE_WRITER = """
import json, sys, time
import numpy as np
from emotion.aggregate import MoodAggregator
from emotion.faces import Faces
from emotion.recorder import SessionRecorder
from emotion.store import SessionStore

store = SessionStore(sys.argv[1])
session_id = store.create_session(title="Killed class", source_kind="camera")
aggregator = MoodAggregator(minute_seconds=1.0)
recorder = SessionRecorder(store, session_id, aggregator, flush_seconds=0.5).start()
probabilities = np.eye(7)[[3, 3, 4]]
frame = 0
while True:
    for _ in range(5):
        frame += 1
        aggregator.add(Faces(boxes=np.zeros((3, 4), np.int32), probabilities=probabilities,
                             track_ids=np.arange(3), timestamp=frame * 0.1))
    added = time.monotonic()
    recorder.poke()
    while (recorder.last_stored or 0) < added:  # the writer thread has stored these frames
        time.sleep(0.05)
    print(json.dumps({"session_id": session_id, "frames": frame}), flush=True)
"""


def test_killed_recorder_keeps_what_it_flushed_and_is_listed_as_interrupted(tmp_path):
    url = f"sqlite:///{tmp_path / 'sessions.sqlite'}"
    writer = subprocess.Popen([sys.executable, "-c", LIVE_WRITER, url], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    lines = queue.Queue()

    def forward_lines() -> None:
        for line in writer.stdout:
            lines.put(line)
        lines.put("")  # the writer ended

    threading.Thread(target=forward_lines, daemon=True).start()
    flushes = []
    try:
        while len(flushes) < 3 and (line := lines.get(timeout=60)):
            flushes.append(json.loads(line))
    finally:
        writer.kill()  # SIGKILL: the crash under test
        writer.wait(timeout=30)
    assert len(flushes) == 3, writer.stderr.read()
    assert writer.returncode == -signal.SIGKILL
    session_id, flushed_frames = flushes[-1]["session_id"], flushes[-1]["frames"]

    assert SessionStore(url).get(session_id).status == "live"  # within the default 30 s it may still be writing
    time.sleep(0.3)
    store = SessionStore(url, stale_after=timedelta(seconds=0.2))
    assert [(s.id, s.status) for s in store.list_sessions()] == [(session_id, "interrupted")]
    minutes = store.minutes(session_id)
    assert sum(m.frames for m in minutes) >= flushed_frames
    assert [m.minute for m in minutes] == list(range(len(minutes)))
    assert all(m.faces == 3 * m.frames and m.shares["happy"] == pytest.approx(2 / 3) for m in minutes)
    assert {s.track_id for s in store.student_minutes(session_id)} == {0, 1, 2}
    with sqlite3.connect(tmp_path / "sessions.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_sessions_are_found_by_class_name_and_date(store):
    maths = seed_session(store, "Maths 5b")
    later = seed_session(store, "maths 5B (repeat)", started=STARTED + timedelta(days=7))
    history = seed_session(store, "History 6a", started=STARTED + timedelta(days=1))
    assert [s.id for s in store.list_sessions(title_contains=" MATHS ")] == [later, maths]
    assert [s.id for s in store.list_sessions(title_contains="100%_")] == []  # no SQL wildcards
    assert [s.id for s in store.list_sessions(since=STARTED + timedelta(hours=1))] == [later, history]
    assert [s.id for s in store.list_sessions(title_contains="maths", until=STARTED + timedelta(days=1))] == [maths]


def test_an_upload_that_is_stored_already_is_found(store):
    stored = seed_session(store, "Maths 5b")
    exported = to_csv_bytes(minute_rows(stored, STARTED, store.minutes(stored)))
    same = parse_session_csv(exported, "maths.csv")
    assert [(info.id, why) for info, why in store.duplicates_of(same)] == [(stored, f"the same session id ({stored})")]
    renamed = parse_session_csv(exported.replace(stored.encode(), b"other-id"), "copy.csv")
    assert [why for _, why in store.duplicates_of(renamed)] == ["the same start and minutes"]
    assert store.duplicates_of(same, owner="someone-else") == []  # only the sessions the user may see
    imported = store.import_session(renamed, title="Copy", source_name="copy.csv")
    assert {info.id for info, _ in store.duplicates_of(renamed)} == {stored, imported}
    other = parse_session_csv(to_csv_bytes(minute_rows("x", STARTED, CLASS_MINUTES[:3])), "short.csv")
    assert store.duplicates_of(other) == []


def test_markers_are_stored_edited_and_deleted(store):
    session_id = seed_session(store)
    quiz, talk = new_marker("quiz", "fractions", seconds=190.0), new_marker("question", seconds=30.5)
    store.add_markers(session_id, [quiz, talk])
    store.add_markers(session_id, [quiz])  # a retried write stores it once
    assert [(m.id, m.label) for m in store.markers(session_id)] == [(talk.id, "question"), (quiz.id, "quiz")]
    store.update_marker(session_id, quiz.id, seconds=10, label="  new   topic ", text="")
    assert [(m.seconds, m.label, m.text) for m in store.markers(session_id)] == [(10, "new topic", ""),
                                                                                 (30.5, "question", "")]
    with pytest.raises(ValueError, match="at most 40"):
        store.update_marker(session_id, quiz.id, seconds=10, label="x" * 41)
    store.delete_marker(session_id, talk.id)
    assert [m.id for m in store.markers(session_id)] == [quiz.id]
    with pytest.raises(SessionNotFound):
        store.delete_marker(session_id, talk.id)
    with pytest.raises(SessionNotFound):
        store.add_markers("nosuchsession", [talk])
