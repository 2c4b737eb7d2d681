"""The analyst's page: look back at stored sessions or an uploaded session CSV, compare them, export, tidy up;
lesson markers, session reports, and one class's sessions over time (Trends).

Thin on purpose: numbers come from emotion.session_numbers, emotion.markers and emotion.trends, figures from
emotion.charts, reports from emotion.report, storage from emotion.store.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Callable

import streamlit as st

import ui  # noqa: F401  (first: import order with TensorFlow, see ui/__init__.py)

st.set_page_config(page_title="Sessions · Class Mood", page_icon="🙂", layout="wide")

from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from emotion import charts  # noqa: E402
from emotion.aggregate import MinuteMood, StudentMinute  # noqa: E402
from emotion.alerts import AlertRule  # noqa: E402
from emotion.session_numbers import format_duration, mood_changes, summarize  # noqa: E402
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS  # noqa: E402
from emotion.markers import Marker  # noqa: E402
from emotion.report import SessionReport, load_report, report_html, report_pdf  # noqa: E402
from emotion.session_csv import (STUDENT_COLUMNS, ImportedSession, SessionCsvError, parse_session_csv,  # noqa: E402
                                 student_rows, to_csv_bytes)
from emotion.store import TITLE_LENGTH, Alert, SessionInfo, SessionNotFound, SessionStore  # noqa: E402
from emotion.trends import TREND_COLUMNS, class_names, class_trend, trend_figure, trend_rows  # noqa: E402
from ui.auth import require_role  # noqa: E402
from ui.common import chart_label, get_store, plain, privacy_note, school_class_only  # noqa: E402
from ui.markers import marker_editor, show_mood_around  # noqa: E402
from ui.mood_view import download_csv  # noqa: E402

user = require_role("teacher", "analyst", "developer")  # a teacher sees their own sessions only

CHOSEN = "chosen_sessions"  # session-state key of the session picker
NOTICES = "sessions_notices"  # outcomes of button callbacks, shown at the top of the next run
MAX_CHOSEN = 3
MAX_CSV_MB = 20  # a day of 10-second minutes is under 1 MB; parsing takes some 30 times the file's size in memory
TOP_EMOTION = "top emotion"
BROWSER_PNG_HINT = "The camera icon above each chart still saves it as PNG from your browser."
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionView:
    """One session as the page shows it: a stored one (info set) or an uploaded CSV not stored yet."""

    key: str  # prefix of its widget keys
    session_id: str  # as written into its CSVs
    title: str
    started_at: datetime
    minute_seconds: float
    minutes: list[MinuteMood]
    students: list[StudentMinute]  # [] in class-only mode
    alerts: list[Alert]
    markers: list[Marker]
    info: SessionInfo | None = None
    class_only: bool = False


def stored_view(store: SessionStore, info: SessionInfo, class_only: bool) -> SessionView:
    """`class_only`: the school's setting; a class-only session has no per-student rows anyway."""
    class_only = class_only or info.class_only
    return SessionView(info.id, info.id, info.title, info.started_at, info.minute_seconds, store.minutes(info.id),
                       [] if class_only else store.student_minutes(info.id), store.alerts(info.id),
                       store.markers(info.id), info, class_only)


def session_label(info: SessionInfo) -> str:
    source = f"{info.source_kind}: {info.source_name}" if info.source_name else info.source_kind
    return f"{info.title} — {info.started_at:%Y-%m-%d %H:%M} UTC — {info.status} — {source}"


def act(action: Callable[[], None], done: str) -> None:
    """Run a button's change to the store; callbacks cannot draw, so the outcome waits in session state."""
    notices = st.session_state.setdefault(NOTICES, [])
    try:
        action()
    except SessionNotFound:
        notices.append(("warning", "That session no longer exists; it was deleted meanwhile."))
    except ValueError as exc:
        notices.append(("error", plain(exc)))
    except SQLAlchemyError as exc:
        log.exception("session store change failed")
        notices.append(("error", f"The session database refused the change: {plain(str(exc).splitlines()[0])}"))
    except Exception as exc:  # a callback's traceback would reach the page: say what failed instead
        log.exception("session store change failed")
        notices.append(("error", f"The change failed ({type(exc).__name__}: {plain(exc)}); details are in the "
                                 "server log."))
    else:
        notices.append(("success", done))


def show_notices() -> None:
    for kind, message in st.session_state.pop(NOTICES, []):
        getattr(st, kind)(message)


def date_range(key: str, label: str) -> tuple[datetime | None, datetime | None]:
    """A date-range input as [since, until) in UTC; (None, None) while no range is picked."""
    picked = st.date_input(label, value=(), key=key, format="YYYY-MM-DD")
    if len(picked) == 0:
        return None, None
    first, last = picked[0], picked[-1]

    def start(day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=timezone.utc)

    return start(first), start(last) + timedelta(days=1)


def filtered(store: SessionStore, owner: str | None) -> list[SessionInfo]:
    """The sessions matching the search fields above the picker (class name, dates)."""
    name, dates = st.columns([2, 1])
    title = name.text_input("Search class name", key="filter-title", max_chars=TITLE_LENGTH,
                            placeholder="part of a class name, any case")
    with dates:
        since, until = date_range("filter-dates", "Started between")
    return store.list_sessions(owner, title_contains=title, since=since, until=until)


def pick_sessions(sessions: list[SessionInfo], matching: list[SessionInfo]) -> list[SessionInfo]:
    """The stored sessions the analyst chose among those `matching` the search (and those already chosen),
    newest first in the list; the newest is chosen at first."""
    if not sessions:
        st.info("No sessions yet. A session is stored when the dashboard follows a class or "
                "`python -m emotion analyze` runs on a recording; you can also upload a session CSV below.")
        return []
    every = {s.id: s for s in sessions}
    st.session_state[CHOSEN] = [i for i in st.session_state.get(CHOSEN, [sessions[0].id]) if i in every]
    shown = {s.id for s in matching} | set(st.session_state[CHOSEN])
    by_id = {i: s for i, s in every.items() if i in shown}
    if len(matching) < len(sessions):
        st.caption(f"{len(matching)} of {len(sessions)} sessions match the search.")
    chosen = st.multiselect(f"Sessions (up to {MAX_CHOSEN}, side by side)", list(by_id), key=CHOSEN,
                            format_func=lambda session_id: session_label(by_id[session_id]),
                            max_selections=MAX_CHOSEN)
    return [by_id[i] for i in chosen]


def parsed(upload) -> ImportedSession | str:
    """The uploaded CSV's session, or why it is none; parsed once per upload (Streamlit's file_id), not on every
    rerun, and only the latest upload's result is kept."""
    results = st.session_state.setdefault("parsed_uploads", {})
    if upload.file_id not in results:
        results.clear()
        if upload.size > MAX_CSV_MB << 20:  # the uploader's own limit is checked only by the browser
            results[upload.file_id] = (f"{upload.name} is {upload.size / 2**20:.1f} MB, over the {MAX_CSV_MB} MB "
                                       "limit for a session CSV")
        else:
            try:
                results[upload.file_id] = parse_session_csv(upload.getvalue(), upload.name)
            except SessionCsvError as exc:
                results[upload.file_id] = str(exc)
    return results[upload.file_id]


def uploaded_view(store: SessionStore, expanded: bool, owner: str, visible_to: str | None) -> SessionView | None:
    """A session CSV dropped on the page: validated, shown beside the chosen sessions, stored on request
    as a session of `owner`; when it seems stored already (among the sessions `visible_to` this user), only
    after saying so and a confirmation."""
    with st.expander("Upload a session CSV", expanded=expanded):
        upload = st.file_uploader("Session CSV (as exported here or by `python -m emotion`)", type=["csv"],
                                  key="upload", max_upload_size=MAX_CSV_MB)
        if upload is None:
            return None
        imported = parsed(upload)
        if isinstance(imported, str):
            st.error(f"Not imported: {plain(imported)}")
            return None
        stored = st.session_state.setdefault("stored_uploads", {})
        if upload.file_id in stored:
            st.success(f"{plain(upload.name)} is stored as session {stored[upload.file_id]}.")
            return None
        st.success(f"{plain(upload.name)}: {len(imported.minutes)} valid minute(s), shown below.")
        st.text_input("Title", value=Path(upload.name).stem[:TITLE_LENGTH], key="upload-title",
                      max_chars=TITLE_LENGTH)
        duplicates = store.duplicates_of(imported, visible_to)
        for info, why in duplicates:
            st.warning(f"This CSV seems to be stored already: “{plain(info.title)}” (session {info.id}, started "
                       f"{info.started_at:%Y-%m-%d %H:%M} UTC) has {why}.")
        again = bool(duplicates) and st.checkbox("Store it again anyway, as another session", key="upload-again")

        def store_upload() -> None:
            session_id = store.import_session(imported, title=st.session_state["upload-title"],
                                              source_name=upload.name[:TITLE_LENGTH], owner=owner)
            stored[upload.file_id] = session_id
            st.session_state[CHOSEN] = [session_id]

        st.button("Store as a session", key="upload-store", on_click=act, disabled=bool(duplicates) and not again,
                  args=(store_upload, f"Stored {plain(upload.name)} as a session."))
    return SessionView("upload", imported.session_id, f"{upload.name} (uploaded)", imported.started,
                       imported.minute_seconds, imported.minutes, [], [], [])


def session_figures(view: SessionView, student_emotion: str, threshold: float) -> dict:
    """The charts of one session by name (names also go into keys and PNG file names), lesson markers drawn
    on the timelines."""
    def marked(fig):
        return charts.add_markers(fig, view.markers, view.minute_seconds)

    # every chart names its session and date, so an exported PNG can be handed on alone
    named = f"{chart_label(view.title)} · {view.started_at:%Y-%m-%d %H:%M} UTC"
    figures = {"mood-over-time": marked(charts.mood_over_time(
                   view.minutes, title=f"Class mood per minute — {named}", minute_seconds=view.minute_seconds,
                   threshold=session_threshold(view, threshold))),
               "emotions-per-minute": marked(charts.emotion_heatmap(
                   view.minutes, title=f"Emotions per minute — {named}", minute_seconds=view.minute_seconds)),
               "whole-session": charts.session_distribution_bars(view.minutes, title=f"Whole session — {named}")}
    if view.students:
        emotion = None if student_emotion == TOP_EMOTION else student_emotion
        figures["students"] = marked(charts.student_timelines(
            view.students, emotion, title=f"Students per minute{f': share of {emotion}' if emotion else ''} — {named}"))
    return figures


def session_threshold(view: SessionView, chosen: float) -> float:
    """The negative-share threshold the session's alerts were raised at (stored with its settings), else the
    one chosen in the sidebar (uploaded CSVs and sessions stored before settings were)."""
    stored = (view.info.settings.get("alert_rule") or {}).get("negative_threshold") if view.info else None
    return float(stored) if isinstance(stored, (int, float)) else chosen


def show_summary(view: SessionView, threshold: float) -> None:
    threshold = session_threshold(view, threshold)
    summary = summarize(view.minutes, threshold, view.minute_seconds)
    duration, faces, negative = st.columns(3)
    duration.metric("Duration", format_duration(summary.duration_seconds),
                    help=f"{summary.minutes} minute rows of {view.minute_seconds:g} s")
    faces.metric("Faces per frame", "–" if summary.mean_faces_per_frame is None
                 else f"{summary.mean_faces_per_frame:.1f}", help="mean over every analysed frame")
    negative.metric(f"Minutes > {threshold:.0%} negative",
                    "–" if summary.share_above_threshold is None else f"{summary.share_above_threshold:.0%}",
                    help=f"{summary.minutes_above_threshold} of {summary.minutes_with_faces} minutes with faces had "
                         f"more than {threshold:.0%} {' + '.join(NEGATIVE_EMOTIONS)}"
                         + (" (the threshold this session's alerts were raised at)" if view.info
                            and threshold != st.session_state.get("threshold") else ""))


def show_mood_changes(view: SessionView) -> None:
    changes = mood_changes(view.minutes)
    if not changes:
        return
    by_minute = {m.minute: m for m in view.minutes}
    st.markdown("**Sharpest mood changes**")
    st.markdown("\n".join(
        f"- minute {c.previous + 1} → {c.minute + 1}: {c.distance:.0%} of the class mix changed "
        f"({by_minute[c.previous].dominant} → {by_minute[c.minute].dominant})" for c in changes))


def show_alerts(view: SessionView) -> None:
    if not view.alerts:
        st.caption("No attention alerts were raised in this session.")
        return
    st.markdown(f"**Attention alerts ({len(view.alerts)})**")
    st.dataframe([{"minute": a.minute + 1, "kind": a.kind, "message": a.message} for a in view.alerts],
                 hide_index=True)


def show_report(report: SessionReport, key: str) -> None:
    """One click each: the report as PDF (charts drawn when clicked) or as HTML."""
    name = f"class-mood-{report.info.id}-report"
    pdf, html = st.columns(2)
    pdf.download_button("Download report (PDF)", lambda: report_pdf(report)[0], file_name=f"{name}.pdf",
                        mime="application/pdf", key=f"{key}-report-pdf", on_click="ignore",
                        help="Title, summary, mood per minute with markers and alerts, the whole-session mix, "
                             "minutes above the threshold, sharpest changes"
                             + ("." if report.class_only else ", per-student summaries (pseudonymous)."))
    html.download_button("Download report (HTML)", lambda: report_html(report), file_name=f"{name}.html",
                         mime="text/html", key=f"{key}-report-html", on_click="ignore")


def show_downloads(view: SessionView, figures: dict) -> None:
    download_csv(view.session_id, view.started_at, view.minutes, view.minute_seconds, key=f"{view.key}-csv")
    if view.students:
        st.download_button("Download per-student CSV",
                           to_csv_bytes(student_rows(view.session_id, view.students), STUDENT_COLUMNS),
                           file_name=f"class-mood-{view.session_id}-students.csv", mime="text/csv",
                           key=f"{view.key}-students-csv", on_click="ignore")
    with st.expander("Charts as PNG"):
        if problem := charts.png_export_problem():
            st.info(f"{problem} {BROWSER_PNG_HINT}")
            return
        if not st.button("Draw the charts as PNG", key=f"{view.key}-png"):
            return
        try:
            with st.spinner("Drawing the charts…"):
                pngs = charts.figures_png(figures)
        except charts.PngExportError as exc:
            st.error(f"{exc} {BROWSER_PNG_HINT}")
            return
        for name, png in pngs.items():
            st.download_button(f"{name}.png", png, file_name=f"class-mood-{view.session_id}-{name}.png",
                               mime="image/png", key=f"{view.key}-{name}-png", on_click="ignore")


def manage(store: SessionStore, info: SessionInfo, minute_count: int) -> None:
    """Rename, and delete after an explicit confirmation."""
    with st.expander("Rename or delete"):
        title_key = f"{info.id}-title"
        st.text_input("Title", value=info.title, key=title_key, max_chars=TITLE_LENGTH)
        st.button("Rename", key=f"{info.id}-rename", on_click=act,
                  args=(lambda: store.rename(info.id, st.session_state[title_key]), "Session renamed."))
        if info.status == "live":
            st.caption("This session is still being recorded; it can be deleted once it has ended.")
            return
        confirmed = st.checkbox(f"Yes, delete “{plain(info.title)}” with its {minute_count} minute(s), per-student rows and "
                                "alerts; this cannot be undone", key=f"{info.id}-confirm-delete")

        def delete() -> None:
            store.delete(info.id)
            st.session_state[CHOSEN] = [i for i in st.session_state.get(CHOSEN, []) if i != info.id]

        st.button("Delete session", key=f"{info.id}-delete", type="primary", disabled=not confirmed, on_click=act,
                  args=(delete, f"Deleted “{plain(info.title)}”."))


def show_session(store: SessionStore, view: SessionView, threshold: float, student_emotion: str) -> None:
    st.subheader(plain(view.title))
    if view.info:
        details = [f"started {view.info.started_at:%Y-%m-%d %H:%M} UTC", view.info.status,
                   f"{view.minute_seconds:.0f} s minutes"] + (["class-only"] if view.class_only else [])
        st.caption(" · ".join(details + ([f"model {plain(view.info.model_name)}"] if view.info.model_name else [])))
    if not view.minutes:
        st.info("No minutes were recorded in this session.")
    else:
        show_summary(view, threshold)
        figures = session_figures(view, student_emotion, threshold)
        for name, fig in figures.items():
            st.plotly_chart(fig, key=f"{view.key}-{name}", width="stretch")
        show_mood_changes(view)
        show_mood_around(view.markers, view.minutes, view.minute_seconds, key=view.key)
        if view.info:
            show_alerts(view)
        show_downloads(view, figures)
        if view.info:
            show_report(load_report(store, view.info.id, threshold=session_threshold(view, threshold),
                                    class_only=view.class_only), view.key)
    if view.info:
        marker_editor(store, view.info, view.markers, act=act)
        manage(store, view.info, len(view.minutes))


def compare(views: list[SessionView]) -> None:
    st.subheader("Comparison")
    emotion = st.selectbox("Emotion to compare", EMOTIONS, index=EMOTIONS.index("happy"), key="compare-emotion")
    st.plotly_chart(charts.emotion_comparison([(chart_label(v.title), v.minutes) for v in views], emotion),
                    key="compare-chart", width="stretch")


def show_trends(store: SessionStore, sessions: list[SessionInfo], chosen: list[SessionInfo], owner: str | None
                ) -> None:
    """All sessions of one class name over time, filterable by date, with the table as CSV."""
    names = class_names(sessions)
    if not names:
        st.info("No sessions yet.")
        return
    first = names.index(class_names(chosen)[0]) if chosen and class_names(chosen)[0] in names else 0
    name_column, dates = st.columns([2, 1])
    name = name_column.selectbox("Class", names, index=first, key="trend-class")
    with dates:
        since, until = date_range("trend-dates", "Sessions between")
    points = class_trend(store, name, owner=owner, since=since, until=until)
    if not points:
        st.info("No session of this class in these dates.")
        return
    st.plotly_chart(trend_figure(points, title=f"Sessions of {chart_label(name)}"), key="trend-chart",
                    width="stretch")
    rows = trend_rows(points)
    st.dataframe(rows, hide_index=True, key="trend-table")
    st.download_button("Download trend CSV", to_csv_bytes(rows, TREND_COLUMNS), file_name="class-mood-trend.csv",
                       mime="text/csv", key="trend-csv", on_click="ignore")


def main() -> None:
    st.title("Sessions")
    class_only = school_class_only()
    st.caption(privacy_note(class_only))
    show_notices()
    store = get_store()
    if store is None:
        return
    with st.sidebar:
        threshold = st.slider("Negative share counted as high", 0.05, 0.95, AlertRule().negative_threshold, 0.05,
                              key="threshold", help=f"Share of {' + '.join(NEGATIVE_EMOTIONS)} in a minute.")
        student_emotion = st.selectbox("Student timelines show", [TOP_EMOTION, *EMOTIONS], key="student-emotion")
    sessions = store.list_sessions(owner=user.session_owner)  # the chosen ids are checked against this list
    sessions_tab, trends_tab = st.tabs(["Sessions", "Trends of a class"])
    with sessions_tab:
        chosen = pick_sessions(sessions, filtered(store, user.session_owner) if sessions else [])
        views = [stored_view(store, info, class_only) for info in chosen]
        upload = uploaded_view(store, expanded=not sessions, owner=user.name, visible_to=user.session_owner)
        views += [upload] if upload else []
        if not views and sessions:
            st.info("Pick one or more sessions above, or upload a session CSV.")
        if len(views) > 1:
            compare(views)
        for column, view in zip(st.columns(len(views) or 1), views):
            with column:
                show_session(store, view, threshold, student_emotion)
    with trends_tab:
        show_trends(store, sessions, chosen, user.session_owner)


try:
    main()
except SQLAlchemyError as exc:
    log.exception("analyst page: session database error")
    st.error(f"The session database could not be read: {plain(str(exc).splitlines()[0])}")
except Exception as exc:  # the page shows a message, the server log keeps the traceback
    log.exception("analyst page failed")
    st.error(f"Something went wrong while showing the sessions ({type(exc).__name__}: {plain(exc)}). "
             "The details are in the server log.")
