"""The retention period: old sessions deleted with every row they own, by the store (SQLite and, when configured,
PostgreSQL), when the app opens the store (CLASS_MOOD_RETENTION_DAYS) and by `python -m emotion sessions purge`;
and uploaded datasets, of which only the newest few stay."""
import io
import time
import zipfile
from datetime import timedelta

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from emotion.store import SESSION_ROWS, SessionStore, utcnow
from tests.conftest import REPO, run_module
from tests.sessions import STARTED, seed_session
from tests.synthetic import write_csv_dataset
from tests.test_store import store  # noqa: F401  (the SQLite / PostgreSQL store fixture)
from training import upload
from training.data import DatasetError
from training.upload import KEEP_UPLOADS, save_upload


def row_counts(sessions: SessionStore, session_id: str) -> dict[str, int]:
    with sessions.engine.connect() as db:
        return {table.name: db.execute(sa.select(sa.func.count()).select_from(table)
                                       .where(table.c.session_id == session_id)).scalar_one()
                for table in SESSION_ROWS}


def test_old_sessions_go_with_their_rows_and_recent_ones_stay(store):  # noqa: F811
    now = STARTED + timedelta(days=100)
    old = seed_session(store, "Last term", started=now - timedelta(days=31))
    recent = seed_session(store, "Last week", started=now - timedelta(days=7))
    before = row_counts(store, old)
    assert before["student_minutes"] and before["minutes"] and before["alerts"]

    assert store.delete_older_than(30, now=now) == 1
    assert [s.title for s in store.list_sessions()] == ["Last week"]
    assert row_counts(store, old) == {"student_minutes": 0, "minutes": 0, "alerts": 0, "markers": 0}
    assert row_counts(store, recent)["student_minutes"] == before["student_minutes"]
    assert store.delete_older_than(30, now=now) == 0
    with pytest.raises(ValueError, match="positive number of days"):
        store.delete_older_than(0)


def test_the_app_applies_the_retention_period_when_it_opens_the_store(database, monkeypatch):
    sessions = SessionStore(database)
    seed_session(sessions, "Two months ago", started=utcnow() - timedelta(days=60))
    seed_session(sessions, "Yesterday", started=utcnow() - timedelta(days=1))
    monkeypatch.setenv("CLASS_MOOD_RETENTION_DAYS", "a month")
    at = AppTest.from_file(str(REPO / "pages/2_Sessions.py"), default_timeout=60).run()
    assert "CLASS_MOOD_RETENTION_DAYS must be a whole number, not 'a month'" in at.error[0].value
    assert len(sessions.list_sessions()) == 2

    monkeypatch.setenv("CLASS_MOOD_RETENTION_DAYS", "30")
    at.run()
    assert not at.exception and not at.error
    assert [s.title for s in sessions.list_sessions()] == ["Yesterday"]
    assert [o.split(" — ")[0] for o in at.multiselect(key="chosen_sessions").options] == ["Yesterday"]


def test_cli_purge(database):
    sessions = SessionStore(database)
    seed_session(sessions, "Old", started=utcnow() - timedelta(days=400))
    seed_session(sessions, "New", started=utcnow() - timedelta(days=2))
    out = run_module("emotion", "sessions", "purge", "--older-than", "365").stdout
    assert "deleted 1 session(s) that started more than 365 day(s) ago" in out
    assert [s.title for s in sessions.list_sessions()] == ["New"]
    refused = run_module("emotion", "sessions", "purge", "--older-than", "0", check=False)
    assert refused.returncode == 2 and "positive number of days" in refused.stderr


def upload_csv(tmp_path, root, name: str, in_use=()):
    time.sleep(0.01)  # uploads a moment apart, as from a browser
    with open(write_csv_dataset(tmp_path / "fer2013.csv", 1), "rb") as stream:
        return save_upload(name, stream, root, in_use=in_use)


def test_only_the_newest_dataset_uploads_are_kept_and_those_a_run_uses(tmp_path):
    root = tmp_path / "datasets"
    used = upload_csv(tmp_path, root, "used by a run.csv")
    uploads = [upload_csv(tmp_path, root, f"upload {number}.csv", in_use=[used]) for number in range(KEEP_UPLOADS + 2)]
    assert sorted(root.iterdir()) == sorted([used, *uploads[-KEEP_UPLOADS:]])
    later = upload_csv(tmp_path, root, "later.csv")  # the run ended: its dataset goes too
    assert sorted(root.iterdir()) == sorted([*uploads[-KEEP_UPLOADS + 1:], later])


def test_a_zip_that_unpacks_beyond_the_limit_is_refused_and_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(upload, "MAX_UNPACKED_BYTES", 1 << 20)  # the real limit is 1 GB, too much to write here
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("train/happy/a.png", bytes(2 << 20))  # 2 MB of zeros in a 2 KB zip
    bomb.seek(0)
    with pytest.raises(DatasetError, match="unpacks to more than"):
        save_upload("bomb.zip", bomb, tmp_path / "datasets")
    assert list((tmp_path / "datasets").iterdir()) == []
