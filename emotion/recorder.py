"""Writes a running session to the store every few seconds, so a crash loses at most those seconds."""
from __future__ import annotations

import threading
import time

from emotion.aggregate import MoodAggregator
from emotion.alerts import AlertRule, attention_alerts
from emotion.store import SessionStore


class SessionRecorder:
    """Flushes the aggregator's minutes (and raises alerts on completed minutes) into one stored session."""

    def __init__(self, store: SessionStore, session_id: str, aggregator: MoodAggregator, *,
                 alert_rule: AlertRule = AlertRule(), flush_seconds: float = 3.0):
        self.store, self.session_id, self.aggregator = store, session_id, aggregator
        self.alert_rule = alert_rule
        self.flush_seconds = flush_seconds
        self._from_minute = 0
        self._alerted: set[tuple[int, str]] = set()
        self._last_flush = 0.0
        self._lock = threading.Lock()
        self.alerts = []

    def maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            minutes = self.aggregator.minutes()
            self.store.write_minutes(self.session_id, minutes, self.aggregator.student_minutes(), self._from_minute)
            self._last_flush = time.monotonic()
            if not minutes:
                return
            self._raise_alerts(minutes[:-1])
            # minutes before the current one are final once written
            self._from_minute = minutes[-1].minute

    def finish(self) -> None:
        """Write everything and mark the session ended (the last minute counts as completed)."""
        self.flush()
        with self._lock:
            self._raise_alerts(self.aggregator.minutes())
        self.store.end_session(self.session_id)

    def _raise_alerts(self, completed) -> None:
        """Store each alert of the completed minutes once (caller holds the lock)."""
        for alert in attention_alerts(completed, self.alert_rule):
            if (alert.minute, alert.kind) not in self._alerted:
                self._alerted.add((alert.minute, alert.kind))
                self.alerts.append(alert)
                self.store.add_alert(self.session_id, alert.minute, alert.kind, alert.message)
