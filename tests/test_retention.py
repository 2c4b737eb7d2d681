"""The retention period: old sessions deleted with every row they own, by the store (SQLite and, when configured,
PostgreSQL), when the app opens the store (CLASS_MOOD_RETENTION_DAYS) and by `python -m emotion sessions purge`."""
from datetime import timedelta

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest

from emotion.store import SESSION_ROWS, SessionStore, utcnow
from tests.conftest import REPO, run_module
from tests.sessions import STARTED, seed_session
from tests.test_store import store  # noqa: F401  (the SQLite / PostgreSQL store fixture)


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
    assert row_counts(store, old) == {"student_minutes": 0, "minutes": 0, "alerts": 0}
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
