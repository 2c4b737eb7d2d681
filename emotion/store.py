"""Stored sessions through SQLAlchemy: SQLite by default, any SQLAlchemy URL (e.g. PostgreSQL) by setting.

    store = SessionStore("sqlite:///data/sessions.sqlite")
    store.list_sessions(title_contains="maths", since=datetime(2024, 9, 1, tzinfo=timezone.utc))
    store.minutes(session_id); store.markers(session_id)

The schema carries a version; `SessionStore` migrates older files on open
without losing sessions. Live sessions are written as they go; a session whose
writer stopped beating (crash, killed server) is shown as interrupted.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from emotion.aggregate import MinuteMood, StudentMinute
from emotion.labels import EMOTIONS
from emotion.markers import LABEL_LENGTH, TEXT_LENGTH, Marker, new_marker

SCHEMA_VERSION = 3
STALE_AFTER = timedelta(seconds=30)  # a live session not written for this long was interrupted
TITLE_LENGTH = 200
BUSY_TIMEOUT = 15.0  # seconds an SQLite writer waits for a lock held by another connection

metadata = sa.MetaData()
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))
sessions = sa.Table(
    "sessions", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("title", sa.String(TITLE_LENGTH), nullable=False),
    sa.Column("source_kind", sa.String(20), nullable=False),  # camera, video, window, import
    sa.Column("source_name", sa.String(500), nullable=False, default=""),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("last_write_at", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(20), nullable=False),  # live, ended, interrupted
    sa.Column("minute_seconds", sa.Float, nullable=False, default=60.0),
    sa.Column("model_name", sa.String(200), nullable=False, default=""),
    sa.Column("model_meta", sa.Text, nullable=False, default="{}"),
    sa.Column("settings", sa.Text, nullable=False, default="{}"),
    sa.Column("owner", sa.String(100), nullable=False, default=""),
)
_share_columns = [sa.Column(e, sa.Float) for e in EMOTIONS]
INTERVAL_NAMES = [f"{e}_{side}" for e in EMOTIONS for side in ("low", "high")]
minutes = sa.Table(
    "minutes", metadata,
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("minute", sa.Integer, primary_key=True),
    sa.Column("frames", sa.Integer, nullable=False),
    sa.Column("faces", sa.Integer, nullable=False),
    sa.Column("students", sa.Integer, nullable=False),
    *_share_columns,
    *[sa.Column(name, sa.Float) for name in INTERVAL_NAMES],  # each share's interval (NULL: none computed)
)
student_minutes = sa.Table(
    "student_minutes", metadata,
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("track_id", sa.Integer, primary_key=True),
    sa.Column("minute", sa.Integer, primary_key=True),
    sa.Column("faces", sa.Integer, nullable=False),
    *[sa.Column(e, sa.Float) for e in EMOTIONS],
)
alerts = sa.Table(
    "alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("minute", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

markers = sa.Table(
    "markers", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # made by the writer, so a retried write stores it once
    sa.Column("session_id", sa.String(32), sa.ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False,
              index=True),
    sa.Column("seconds", sa.Float, nullable=False),  # session time
    sa.Column("label", sa.String(LABEL_LENGTH), nullable=False),
    sa.Column("text", sa.String(TEXT_LENGTH), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

SESSION_ROWS = (student_minutes, minutes, alerts, markers)  # a session's rows, deleted before the session itself
SAME_START = timedelta(seconds=1)  # a session CSV gives minute starts to the second
SAME_SHARE = 1e-5  # and shares to 6 decimals

# Version 1 kept sessions and minutes only; version 2 added per-student rows, alerts,
# and the session's model, settings and owner; version 3 added lesson markers (a new table, which
# create_all makes) and each minute's share intervals. Each step upgrades a file by one version.
MIGRATIONS = {
    2: [
        "ALTER TABLE sessions ADD COLUMN model_name VARCHAR(200) NOT NULL DEFAULT ''",
        "ALTER TABLE sessions ADD COLUMN model_meta TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE sessions ADD COLUMN settings TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE sessions ADD COLUMN owner VARCHAR(100) NOT NULL DEFAULT ''",
    ],
    3: [f"ALTER TABLE minutes ADD COLUMN {name} FLOAT" for name in INTERVAL_NAMES],
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def _utc(moment: datetime) -> datetime:
    """What gets stored: UTC, because SQLite drops the offset (a naive time is taken as UTC already)."""
    return _aware(moment).astimezone(timezone.utc)


def _title(title: str) -> str:
    """A title the analyst typed, checked: trimmed, not empty, short enough for every database."""
    title = title.strip()
    if not title:
        raise ValueError("a session title cannot be empty")
    if len(title) > TITLE_LENGTH:
        raise ValueError(f"a session title has at most {TITLE_LENGTH} characters (this one has {len(title)})")
    return title


@dataclass(frozen=True)
class SessionInfo:
    id: str
    title: str
    source_kind: str
    source_name: str
    started_at: datetime
    ended_at: datetime | None
    last_write_at: datetime | None
    status: str
    minute_seconds: float
    model_name: str
    model_meta: dict
    settings: dict
    owner: str

    @property
    def class_only(self) -> bool:
        """Recorded in class-only mode: no per-student rows were stored."""
        return bool(self.settings.get("class_only"))


@dataclass(frozen=True)
class Alert:
    minute: int
    kind: str
    message: str
    created_at: datetime


class SessionNotFound(KeyError):
    pass


class SessionStore:
    def __init__(self, url: str, *, stale_after: timedelta = STALE_AFTER):
        """`stale_after`: how long a live session may go unwritten before it is listed as interrupted."""
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.stale_after = stale_after
        sqlite = url.startswith("sqlite")
        # a writer waits up to 15 s for another connection's write lock instead of failing at once
        self.engine = sa.create_engine(url, future=True, connect_args={"timeout": BUSY_TIMEOUT} if sqlite else {})
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._migrate()

    # ---- schema
    def _migrate(self) -> None:
        with self.engine.begin() as db:
            inspector = sa.inspect(db)
            if not inspector.has_table("sessions"):
                metadata.create_all(db)
                db.execute(schema_version.insert().values(version=SCHEMA_VERSION))
                return
            if not inspector.has_table("schema_version"):
                raise RuntimeError(f"{self.url} holds a 'sessions' table that is not Class Mood's; "
                                   "use another database")
            version = db.execute(sa.select(schema_version.c.version)).scalar_one()
            if version > SCHEMA_VERSION:
                raise RuntimeError(f"{self.url} was written by a newer Class Mood (schema {version}); update the app")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target]:
                    db.execute(sa.text(statement))
                metadata.create_all(db)  # tables new in this version
                db.execute(schema_version.update().values(version=target))

    def schema_version(self) -> int:
        with self.engine.connect() as db:
            return db.execute(sa.select(schema_version.c.version)).scalar_one()

    # ---- sessions
    def create_session(self, *, title: str, source_kind: str, source_name: str = "", started_at: datetime | None = None,
                       minute_seconds: float = 60.0, model_name: str = "", model_meta: dict | None = None,
                       settings: dict | None = None, owner: str = "", status: str = "live",
                       session_id: str | None = None) -> str:
        """Store a new session and return its id (`session_id`, or a new one)."""
        session_id = session_id or uuid.uuid4().hex[:12]
        now = utcnow()
        title = title.strip()[:TITLE_LENGTH] or "Untitled session"  # a class starts whatever the name field holds
        with self.engine.begin() as db:
            db.execute(sessions.insert().values(
                id=session_id, title=title, source_kind=source_kind, source_name=source_name,
                started_at=_utc(started_at or now), last_write_at=now, status=status, minute_seconds=minute_seconds,
                model_name=model_name, model_meta=json.dumps(model_meta or {}), settings=json.dumps(settings or {}),
                owner=owner))
        return session_id

    def write_minutes(self, session_id: str, rows: list[MinuteMood], students: list[StudentMinute] = (),
                      from_minute: int = 0) -> None:
        """Replace the session's rows from `from_minute` on, in one transaction, and beat the heartbeat."""
        with self.engine.begin() as db:
            db.execute(minutes.delete().where(minutes.c.session_id == session_id, minutes.c.minute >= from_minute))
            db.execute(student_minutes.delete().where(student_minutes.c.session_id == session_id,
                                                      student_minutes.c.minute >= from_minute))
            minute_values = [{"session_id": session_id, "minute": m.minute, "frames": m.frames, "faces": m.faces,
                              "students": m.students, **{e: (m.shares or {}).get(e) for e in EMOTIONS},
                              **{f"{e}_low": (m.low or {}).get(e) for e in EMOTIONS},
                              **{f"{e}_high": (m.high or {}).get(e) for e in EMOTIONS}}
                             for m in rows if m.minute >= from_minute]
            if minute_values:
                db.execute(minutes.insert(), minute_values)
            student_values = [{"session_id": session_id, "track_id": s.track_id, "minute": s.minute, "faces": s.faces,
                               **s.shares} for s in students if s.minute >= from_minute]
            if student_values:
                db.execute(student_minutes.insert(), student_values)
            db.execute(sessions.update().where(sessions.c.id == session_id).values(last_write_at=utcnow()))

    def end_session(self, session_id: str, status: str = "ended") -> None:
        """Mark a session finished: "ended", or "interrupted" when its analysis was cut short."""
        if status not in ("ended", "interrupted"):
            raise ValueError(f"a finished session is ended or interrupted, not {status!r}")
        with self.engine.begin() as db:
            db.execute(sessions.update().where(sessions.c.id == session_id)
                       .values(status=status, ended_at=utcnow(), last_write_at=utcnow()))

    def add_alert(self, session_id: str, minute: int, kind: str, message: str) -> None:
        with self.engine.begin() as db:
            db.execute(alerts.insert().values(session_id=session_id, minute=minute, kind=kind, message=message,
                                              created_at=utcnow()))

    def rename(self, session_id: str, title: str) -> None:
        title = _title(title)
        with self.engine.begin() as db:
            if db.execute(sessions.update().where(sessions.c.id == session_id).values(title=title)).rowcount == 0:
                raise SessionNotFound(session_id)

    def delete(self, session_id: str) -> None:
        with self.engine.begin() as db:
            if _delete_sessions(db, sessions.c.id == session_id) == 0:
                raise SessionNotFound(session_id)

    def delete_older_than(self, days: float, now: datetime | None = None) -> int:
        """Delete the sessions that started more than `days` ago, with their rows (the retention period);
        returns how many sessions went."""
        if days <= 0:
            raise ValueError(f"a retention period is a positive number of days, not {days}")
        with self.engine.begin() as db:
            return _delete_sessions(db, sessions.c.started_at < _utc((now or utcnow()) - timedelta(days=days)))

    # ---- reading
    def _info(self, row) -> SessionInfo:
        status = row.status
        last = _aware(row.last_write_at)
        if status == "live" and (last is None or utcnow() - last > self.stale_after):
            status = "interrupted"
        return SessionInfo(row.id, row.title, row.source_kind, row.source_name, _aware(row.started_at),
                           _aware(row.ended_at), last, status, row.minute_seconds, row.model_name,
                           json.loads(row.model_meta or "{}"), json.loads(row.settings or "{}"), row.owner)

    def list_sessions(self, owner: str | None = None, *, title_contains: str = "", since: datetime | None = None,
                      until: datetime | None = None) -> list[SessionInfo]:
        """Newest first; of `owner` only when given, titles containing `title_contains` (any case), started
        at or after `since` and before `until`."""
        query = sa.select(sessions).order_by(sessions.c.started_at.desc())
        if owner is not None:
            query = query.where(sessions.c.owner == owner)
        if since is not None:
            query = query.where(sessions.c.started_at >= _utc(since))
        if until is not None:
            query = query.where(sessions.c.started_at < _utc(until))
        with self.engine.connect() as db:
            found = [self._info(row) for row in db.execute(query)]
        wanted = title_contains.strip().casefold()  # in Python: SQLite's lower() knows ASCII only
        return [info for info in found if wanted in info.title.casefold()] if wanted else found

    def get(self, session_id: str) -> SessionInfo:
        with self.engine.connect() as db:
            row = db.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()
        if row is None:
            raise SessionNotFound(session_id)
        return self._info(row)

    def latest(self) -> SessionInfo:
        found = self.list_sessions()
        if not found:
            raise SessionNotFound("no sessions stored yet")
        return found[0]

    def minutes(self, session_id: str) -> list[MinuteMood]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(minutes).where(minutes.c.session_id == session_id).order_by(minutes.c.minute))
            return [MinuteMood(r.minute, r.frames, r.faces, r.students,
                               {e: getattr(r, e) for e in EMOTIONS} if r.faces else None,
                               *({e: getattr(r, f"{e}_{side}") for e in EMOTIONS} if r.angry_low is not None else None
                                 for side in ("low", "high"))) for r in rows]

    def student_minutes(self, session_id: str) -> list[StudentMinute]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(student_minutes).where(student_minutes.c.session_id == session_id)
                              .order_by(student_minutes.c.minute, student_minutes.c.track_id))
            return [StudentMinute(r.track_id, r.minute, r.faces, {e: getattr(r, e) for e in EMOTIONS}) for r in rows]

    def alerts(self, session_id: str) -> list[Alert]:
        with self.engine.connect() as db:
            rows = db.execute(sa.select(alerts).where(alerts.c.session_id == session_id).order_by(alerts.c.id))
            return [Alert(r.minute, r.kind, r.message, _aware(r.created_at)) for r in rows]

    # ---- lesson markers
    def add_markers(self, session_id: str, new: list[Marker]) -> None:
        """Store markers of a session; one already stored (same id: a retried write) is left as it is."""
        with self.engine.begin() as db:
            if db.execute(sa.select(sessions.c.id).where(sessions.c.id == session_id)).first() is None:
                raise SessionNotFound(session_id)
            stored = set(db.execute(sa.select(markers.c.id).where(markers.c.session_id == session_id)).scalars())
            values = [{"id": m.id, "session_id": session_id, "seconds": m.seconds, "label": m.label, "text": m.text,
                       "created_at": _utc(m.created_at)} for m in new if m.id not in stored]
            if values:
                db.execute(markers.insert(), values)

    def update_marker(self, session_id: str, marker_id: str, *, seconds: float, label: str, text: str = "") -> None:
        checked = new_marker(label, text, seconds=seconds)
        with self.engine.begin() as db:
            changed = db.execute(markers.update().where(markers.c.session_id == session_id, markers.c.id == marker_id)
                                 .values(seconds=checked.seconds, label=checked.label, text=checked.text))
            if changed.rowcount == 0:
                raise SessionNotFound(marker_id)

    def delete_marker(self, session_id: str, marker_id: str) -> None:
        with self.engine.begin() as db:
            gone = db.execute(markers.delete().where(markers.c.session_id == session_id, markers.c.id == marker_id))
            if gone.rowcount == 0:
                raise SessionNotFound(marker_id)

    def markers(self, session_id: str) -> list[Marker]:
        """In time order."""
        with self.engine.connect() as db:
            rows = db.execute(sa.select(markers).where(markers.c.session_id == session_id)
                              .order_by(markers.c.seconds, markers.c.created_at))
            return [Marker(r.seconds, r.label, r.text, r.id, _aware(r.created_at)) for r in rows]

    # ---- imports
    def duplicates_of(self, imported, owner: str | None = None) -> list[tuple[SessionInfo, str]]:
        """Stored sessions (of `owner`, when given) that an uploaded CSV seems to be already: (session, why)."""
        found = []
        for info in self.list_sessions(owner):
            if imported.session_id in (info.id, info.settings.get("imported_session_id")):
                found.append((info, f"the same session id ({imported.session_id})"))
            elif abs(info.started_at - imported.started) <= SAME_START and \
                    _same_minutes(self.minutes(info.id), imported.minutes):
                found.append((info, "the same start and minutes"))
        return found

    def import_session(self, imported, *, title: str, source_name: str, owner: str = "") -> str:
        """Store a validated CSV (see session_csv.parse_session_csv) as an ended session, all or nothing."""
        session_id = uuid.uuid4().hex[:12]
        with self.engine.begin() as db:
            db.execute(sessions.insert().values(
                id=session_id, title=_title(title), source_kind="import", source_name=source_name,
                started_at=_utc(imported.started), ended_at=_utc(imported.ended), last_write_at=utcnow(),
                status="ended", minute_seconds=imported.minute_seconds, model_name="", model_meta="{}",
                settings=json.dumps({"imported_session_id": imported.session_id}), owner=owner))
            db.execute(minutes.insert(), [
                {"session_id": session_id, "minute": m.minute, "frames": m.frames, "faces": m.faces,
                 "students": m.students, **{e: (m.shares or {}).get(e) for e in EMOTIONS}} for m in imported.minutes])
        return session_id


def _same_minutes(stored: list[MinuteMood], imported: list[MinuteMood]) -> bool:
    """The same minute rows, up to the rounding of a session CSV."""
    def key(m: MinuteMood):
        return m.minute, m.frames, m.faces, m.students

    def shares_match(a: MinuteMood, b: MinuteMood) -> bool:
        if a.shares is None or b.shares is None:
            return a.shares is b.shares
        return all(abs(a.shares[e] - b.shares[e]) <= SAME_SHARE for e in EMOTIONS)

    return len(stored) == len(imported) and all(key(a) == key(b) and shares_match(a, b)
                                                for a, b in zip(stored, imported))


def _delete_sessions(db, which) -> int:
    """Delete the sessions matching `which` with every row they own (rows first); returns how many sessions went."""
    for table in SESSION_ROWS:
        db.execute(table.delete().where(table.c.session_id.in_(sa.select(sessions.c.id).where(which))))
    return db.execute(sessions.delete().where(which)).rowcount


def _sqlite_pragmas(connection, _record) -> None:
    # Python's sqlite3 would commit DDL outside the transaction, leaving a half-migrated file after a
    # failed migration; with its own transaction handling off, `_sqlite_begin` makes every step atomic.
    connection.isolation_level = None
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the analyst page) never block the live writer
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(connection) -> None:
    connection.exec_driver_sql("BEGIN")
