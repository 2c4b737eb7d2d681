"""Writes a running session to the store from a background thread, so a crash loses at most a few seconds
and a busy or failing database never stops the video.

    recorder = SessionRecorder(store, "a1b2c3", aggregator, create={"title": "Maths", ...}).start()
    ...                        # frames go into the aggregator; recorder.poke() after each one
    recorder.add_marker(marker)  # a lesson marker, stored at the next write (at once when finished)
    recorder.finish("ended")   # last rows, alerts on every minute, status; True once stored

The thread creates the stored session, then every `flush_seconds` in which frames arrived rewrites the
minutes that may still change. A failed write is retried with a growing pause (the write replaces rows, so
repeating it is harmless); `problem` says what failed meanwhile. A session whose frames stop arriving is not
written any more, so the store lists it as interrupted once it goes stale.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time

from sqlalchemy.exc import IntegrityError

from emotion.aggregate import MoodAggregator
from emotion.alerts import AlertRule, attention_alerts
from emotion.markers import Marker
from emotion.store import SessionStore

log = logging.getLogger(__name__)
RETRY_PAUSES = (0.5, 1.0, 2.0, 4.0, 8.0)  # seconds between attempts; the last one repeats
IDLE_EXIT_SECONDS = 900.0  # a writer with nothing to write for this long ends; poke() starts it again


class SessionRecorder:
    """Flushes the aggregator's minutes (and raises alerts on completed minutes) into one stored session."""

    def __init__(self, store: SessionStore, session_id: str, aggregator: MoodAggregator, *,
                 alert_rule: AlertRule = AlertRule(), flush_seconds: float = 3.0, create: dict | None = None,
                 students: bool = True):
        """`create`: the store.create_session arguments when the session is not stored yet; `students` False
        (class-only mode) stores no per-student rows."""
        self.store, self.session_id, self.aggregator = store, session_id, aggregator
        self.students = students
        self.alert_rule = alert_rule
        self.flush_seconds = flush_seconds
        self.alerts = []
        self.problem: str | None = None
        self.last_stored: float | None = None  # time.monotonic() of the last write that succeeded
        self._create = create
        self._from_minute = 0
        self._alerted: set[tuple[int, str]] = set()  # episodes (first minute, kind) already alerted
        self._unstored_alerts = []
        self._unstored_markers: list[Marker] = []
        self._dirty = False
        self._final_status: str | None = None
        self._done = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> "SessionRecorder":
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=f"session-writer-{self.session_id}",
                                                daemon=True)
                self._thread.start()
        return self

    def poke(self) -> None:
        """New frames are in the aggregator: write them at the next flush."""
        self._dirty = True
        if self._thread is None or not self._thread.is_alive():
            self.start()

    def finish(self, status: str = "ended", *, wait: float = 30.0) -> bool:
        """Write everything, raise alerts on every minute (the last counts as completed) and set `status`;
        True when stored within `wait` seconds (otherwise the writer keeps retrying in the background)."""
        self._final_status = status
        self._dirty = True
        self.start()
        self._wake.set()
        return self._done.wait(wait)

    def add_marker(self, marker: Marker) -> None:
        """Store `marker` with the session: at the next write while the session runs (never waiting for the
        database), or right here once it has finished (then errors reach the caller)."""
        with self._lock:
            finished = self._done.is_set()
            if not finished:
                self._unstored_markers.append(marker)
        if finished:
            self.store.add_markers(self.session_id, [marker])
            return
        self._dirty = True
        self.start()
        self._wake.set()

    # ---- the writer thread
    def _run(self) -> None:
        idle_since = time.monotonic()
        while not self._done.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if not self._dirty:
                if time.monotonic() - idle_since > IDLE_EXIT_SECONDS:
                    return
                continue
            idle_since = time.monotonic()
            final = self._final_status
            self._dirty = False
            self._retrying(lambda: self._write(final))
            while final is not None:  # markers added during the last write are stored before it counts as done
                with self._lock:
                    if not self._unstored_markers:
                        self._done.set()  # a marker added from now on is stored by add_marker itself
                        break
                self._retrying(self._write_markers)

    def _retrying(self, step) -> None:
        for attempt in itertools.count():
            try:
                started = time.monotonic()
                step()
                self.problem, self.last_stored = None, started
                return
            except Exception as exc:  # any storage error: keep the video going, try again
                self.problem = f"the session database is not accepting writes ({type(exc).__name__}: {exc})"
                log.warning("%s: %s; retrying", self.session_id, self.problem)
                if self._final_status is None and self._dirty:
                    return  # newer rows are waiting: the next flush writes them (and these) again
                time.sleep(RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)])

    def _write(self, final: str | None) -> None:
        if self._create is not None:
            try:
                self.store.create_session(session_id=self.session_id, **self._create)
            except IntegrityError:  # an earlier attempt committed before it failed to report back
                pass
            self._create = None
        minutes = self.aggregator.minutes()
        self.store.write_minutes(self.session_id, minutes, self.aggregator.student_minutes() if self.students else [],
                                 self._from_minute)
        self._write_markers()
        completed = minutes if final is not None else minutes[:-1]
        for alert in attention_alerts(completed, self.alert_rule):
            if alert.key not in self._alerted:  # an episode is stored once, when it starts to alert
                self._alerted.add(alert.key)
                self.alerts.append(alert)
                self._unstored_alerts.append(alert)
            else:  # and shown with its current length
                self.alerts = [alert if known.key == alert.key else known for known in self.alerts]
        while self._unstored_alerts:
            alert = self._unstored_alerts[0]
            self.store.add_alert(self.session_id, alert.minute, alert.kind, alert.message)
            self._unstored_alerts.pop(0)
        if minutes:
            self._from_minute = minutes[-1].minute  # minutes before the current one are final once written
        if final is not None:
            self.store.end_session(self.session_id, status=final)

    def _write_markers(self) -> None:
        with self._lock:
            pending = list(self._unstored_markers)
        if pending:
            self.store.add_markers(self.session_id, pending)  # a marker stored by an earlier try is skipped
            with self._lock:
                del self._unstored_markers[:len(pending)]
