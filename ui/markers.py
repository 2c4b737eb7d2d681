"""Lesson markers on the page: the one-click bar while a class runs, and the analyst's editor afterwards.

    marker_bar(live.session.add_marker, key="camera")          # dashboard: camera, screen, recorded-video job
    marker_editor(store, info, minutes, act=act)                # Sessions page: add, edit, delete, before/after

Labels and texts are shown as plain text (ui.common.plain) and bounded by the widgets and emotion.markers.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from emotion.aggregate import MinuteMood
from emotion.markers import (LABELS, NOTE, TEXT_LENGTH, Marker, MarkerError, MoodAround, before_after_figure,
                             format_time, mood_around, new_marker, parse_time)
from emotion.store import SessionInfo, SessionStore
from ui.common import plain


def marker_bar(add: Callable[..., Marker], *, key: str) -> None:
    """Mark this moment of the class: one click on a ready label, or a typed note."""
    notice = f"{key}-marker-notice"

    def mark(label: str, text: str = "") -> None:
        try:
            marker = add(label, text)
        except MarkerError as exc:
            st.session_state[notice] = f"Not marked: {exc}"
        else:
            st.session_state[notice] = f"Marked “{marker.caption}” at {format_time(marker.seconds)}."

    st.caption("Mark this moment of the lesson:")
    for column, label in zip(st.columns(len(LABELS)), LABELS):
        column.button(label.capitalize(), key=f"{key}-marker-{label}", on_click=mark, args=(label,),
                      width="stretch")
    with st.form(f"{key}-marker-note", clear_on_submit=True, border=False):
        text, add_note = st.columns([4, 1], vertical_alignment="bottom")
        text.text_input("Note", key=f"{key}-marker-text", max_chars=TEXT_LENGTH, placeholder="what happens now")
        add_note.form_submit_button("Add note", on_click=lambda: mark(NOTE, st.session_state[f"{key}-marker-text"]))
    if st.session_state.get(notice):
        st.caption(plain(st.session_state[notice]))


def mood_around_rows(arounds: list[MoodAround]) -> list[dict]:
    """One row per marker: the mood before and after it, side by side."""
    def pct(value):
        return None if value is None else round(100 * value)

    return [{"time": format_time(a.marker.seconds), "marker": a.marker.caption,
             "negative before %": pct(MoodAround.negative(a.before)),
             "negative after %": pct(MoodAround.negative(a.after)),
             "top before": max(a.before, key=a.before.get) if a.before else "",
             "top after": max(a.after, key=a.after.get) if a.after else "",
             "mix changed %": pct(a.change)} for a in arounds]


def show_mood_around(markers: list[Marker], minutes: list[MinuteMood], minute_seconds: float, *, key: str) -> None:
    if not markers:
        return
    arounds = [mood_around(minutes, m, minute_seconds) for m in markers]
    st.markdown("**Mood before and after each marker** (two minutes before the marker's minute; that minute and "
                "the next)")
    st.dataframe(mood_around_rows(arounds), hide_index=True, key=f"{key}-around")
    chosen = st.selectbox("Marker", range(len(arounds)), key=f"{key}-around-marker",
                          format_func=lambda i: f"{format_time(markers[i].seconds)} {markers[i].caption}")
    st.plotly_chart(before_after_figure(arounds[chosen]), key=f"{key}-around-chart", width="stretch")


def marker_editor(store: SessionStore, info: SessionInfo, markers: list[Marker], *,
                  act: Callable[[Callable[[], None], str], None]) -> None:
    """Add, edit and delete a stored session's markers; `act(change, done)` runs a change and reports it."""
    key = f"{info.id}-markers"
    with st.expander(f"Lesson markers ({len(markers)})"):
        if markers:
            st.dataframe([{"time": format_time(m.seconds), "minute": m.minute(info.minute_seconds) + 1,
                           "label": m.label, "text": m.text} for m in markers], hide_index=True, key=f"{key}-table")
        st.markdown("**Add a marker**")
        _fields(f"{key}-new", None)
        st.button("Add marker", key=f"{key}-add", on_click=act,
                  args=(lambda: store.add_markers(info.id, [_marker_from(f"{key}-new")]), "Marker added."))
        if not markers:
            return
        st.markdown("**Edit or delete a marker**")
        by_id = {m.id: m for m in markers}
        chosen = by_id.get(st.selectbox("Marker", list(by_id), key=f"{key}-chosen",
                                        format_func=lambda i: f"{format_time(by_id[i].seconds)} {by_id[i].caption}"))
        if chosen is None:
            return
        edit = f"{key}-edit-{chosen.id}"
        _fields(edit, chosen)

        def save() -> None:
            marker = _marker_from(edit)
            store.update_marker(info.id, chosen.id, seconds=marker.seconds, label=marker.label, text=marker.text)

        save_column, delete_column = st.columns(2)
        save_column.button("Save marker", key=f"{edit}-save", on_click=act, args=(save, "Marker saved."))
        delete_column.button("Delete marker", key=f"{edit}-delete", on_click=act,
                             args=(lambda: store.delete_marker(info.id, chosen.id), "Marker deleted."))


def _fields(key: str, marker: Marker | None) -> None:
    """Time, label and text inputs under `key`, filled from `marker`."""
    labels = list(dict.fromkeys([*LABELS, NOTE, *([marker.label] if marker else [])]))
    time, label = st.columns(2)
    time.text_input("Time (m:ss of the session)", value=format_time(marker.seconds) if marker else "0:00",
                    key=f"{key}-time", max_chars=12)
    label.selectbox("Label", labels, index=labels.index(marker.label) if marker else 0, key=f"{key}-label")
    st.text_input("Text (optional)", value=marker.text if marker else "", key=f"{key}-text", max_chars=TEXT_LENGTH)


def _marker_from(key: str) -> Marker:
    """The marker the fields under `key` describe (MarkerError, a ValueError, says what is wrong)."""
    return new_marker(st.session_state[f"{key}-label"], st.session_state[f"{key}-text"],
                      seconds=parse_time(st.session_state[f"{key}-time"]))
