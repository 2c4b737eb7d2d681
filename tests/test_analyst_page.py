"""The analyst's page (pages/2_Sessions.py) on seeded SQLite files, run by Streamlit's AppTest and once in a
real server with headless Chromium; the whole-session numbers it shares with the CLI; one class's trend over
time; search by class name and date; uploads that are stored already."""
import json
import sqlite3
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from emotion import charts
from emotion.aggregate import MinuteMood
from emotion.session_numbers import mood_changes, session_distribution, summarize, total_variation
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS
from emotion.session_csv import minute_rows, to_csv_bytes
from emotion.store import SessionStore
from tests.browser import REPO, chromium, requires_chromium, streamlit_server, wait_for_app
from tests.conftest import run_module
from tests.sessions import CLASS_MINUTES, STARTED, class_students, mix, seed_session

PAGE = "pages/2_Sessions.py"


def run_page() -> AppTest:
    at = AppTest.from_file(REPO / PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def chart_specs(at: AppTest, tab: int = 0) -> list[dict]:
    """The charts of a tab: 0 the sessions, 1 the trends."""
    return [json.loads(chart.proto.spec) for chart in at.tabs[tab].get("plotly_chart")]


def chart_titles(at: AppTest, tab: int = 0) -> list[str]:
    return [spec["layout"]["title"]["text"] for spec in chart_specs(at, tab)]


def session_id(store: SessionStore, title: str) -> str:
    return next(s.id for s in store.list_sessions() if s.title == title)


def test_newest_session_is_shown_with_charts_numbers_and_alerts(store):
    at = run_page()
    history = session_id(store, "History 6a")
    assert at.title[0].value == "Sessions"
    assert any("Privacy" in caption.value for caption in at.caption)
    picker = at.multiselect(key="chosen_sessions")
    assert picker.value == [history]
    assert picker.options[1].startswith("Maths 5b — 2024-05-06 09:00 UTC — ended")
    named = "History 6a · 2024-05-07 09:00 UTC"  # on every chart, so an exported PNG says what it shows
    assert chart_titles(at) == [f"Class mood per minute — {named}", f"Emotions per minute — {named}",
                                f"Whole session — {named} (258 faces)", f"Students per minute — {named}"]
    mood, heatmap, whole, students = chart_specs(at)
    assert [trace["name"] for trace in mood["data"]][-1] == "faces per frame" and len(mood["data"]) == 8
    assert heatmap["data"][0]["type"] == "heatmap" and len(heatmap["data"][0]["y"]) == 7
    assert sum(whole["data"][0]["y"]) == pytest.approx(1.0)
    assert students["data"][0]["y"] == ["#1", "#2", "#3"]
    summary = summarize(CLASS_MINUTES, 0.5)
    assert {m.label: m.value for m in at.metric} == {
        "Duration": "6 min", "Faces per frame": f"{summary.mean_faces_per_frame:.1f}",
        "Minutes > 50% negative": "40%"}
    assert any("minute 2 → 4: 80%" in md.value for md in at.markdown)
    assert at.dataframe[0].value["kind"].tolist() == ["negative"]
    assert [b.label for b in at.get("download_button")][:2] == ["Download session CSV", "Download per-student CSV"]


def test_threshold_and_student_emotion_change_the_view(store):
    at = run_page()
    at.slider(key="threshold").set_value(0.7).run()
    at.selectbox(key="student-emotion").set_value("sad").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Minutes > 70% negative"] == "20%"
    students = chart_specs(at)[3]
    assert students["layout"]["title"]["text"] == \
        "Students per minute: share of sad — History 6a · 2024-05-07 09:00 UTC"
    sad_of_student_2 = [s.shares["sad"] for s in class_students() if s.track_id == 2]
    assert [v for v in students["data"][0]["z"][1] if v is not None] == pytest.approx(sad_of_student_2)


def test_two_sessions_side_by_side_with_an_overlaid_emotion(store):
    at = run_page()
    at.multiselect(key="chosen_sessions").select(session_id(store, "Maths 5b")).run()
    at.selectbox(key="compare-emotion").set_value("sad").run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["Comparison", "History 6a", "Maths 5b"]
    comparison, *per_session = chart_specs(at)
    assert [trace["name"] for trace in comparison["data"]] == ["History 6a", "Maths 5b"]
    assert comparison["layout"]["title"]["text"] == "Share of sad per minute"
    assert len(per_session) == 8


def test_rename_then_delete_after_confirming(store):
    at = run_page()
    history = session_id(store, "History 6a")
    at.text_input(key=f"{history}-title").input("History 6a, Tuesday")
    at.button(key=f"{history}-rename").click().run()
    assert store.get(history).title == "History 6a, Tuesday"
    assert [s.value for s in at.success] == ["Session renamed."]
    assert at.subheader[0].value == "History 6a, Tuesday"

    delete = at.button(key=f"{history}-delete")
    assert delete.disabled
    at.checkbox(key=f"{history}-confirm-delete").check().run()
    at.button(key=f"{history}-delete").click().run()
    assert not at.exception
    assert [s.title for s in store.list_sessions()] == ["Maths 5b"]
    assert [s.value for s in at.success] == ["Deleted “History 6a, Tuesday”."]
    assert at.multiselect(key="chosen_sessions").value == []
    assert "Pick one or more sessions" in at.info[0].value


def test_live_and_interrupted_sessions_are_labelled_and_only_a_live_one_cannot_be_deleted(store, database):
    seed_session(store, "Live now", started=STARTED + timedelta(days=3), ended=False)
    crashed = seed_session(store, "Crashed", started=STARTED + timedelta(days=2), ended=False)
    with sqlite3.connect(database.removeprefix("sqlite:///")) as db:  # its writer stopped an hour after the start
        db.execute("UPDATE sessions SET last_write_at = '2024-05-08 10:00:00.000000' WHERE id = ?", (crashed,))
    at = run_page()
    labels = at.multiselect(key="chosen_sessions").options
    assert labels[0].startswith("Live now — 2024-05-09 09:00 UTC — live — camera")
    assert labels[1].startswith("Crashed — 2024-05-08 09:00 UTC — interrupted — camera")
    at.multiselect(key="chosen_sessions").select(crashed).run()
    assert [c.key for c in at.checkbox] == [f"{crashed}-confirm-delete"]
    assert any("still being recorded" in caption.value for caption in at.caption)


def test_uploaded_csv_is_checked_shown_and_stored(store):
    at = run_page()
    at.file_uploader(key="upload").set_value(("broken.csv", b"session_id,minute\nx,1\n", "text/csv")).run()
    assert not at.exception
    assert "broken.csv row 1 (header), column 3" in at.error[0].value
    assert len(store.list_sessions()) == 2

    good = to_csv_bytes(minute_rows("lab", STARTED - timedelta(days=1), CLASS_MINUTES))
    at.file_uploader(key="upload").set_value(("lab.csv", good, "text/csv")).run()
    assert not at.exception and not at.error
    assert [h.value for h in at.subheader] == ["Comparison", "History 6a", "lab.csv (uploaded)"]
    at.text_input(key="upload-title").input("Lab session")
    at.button(key="upload-store").click().run()
    assert not at.exception
    stored = session_id(store, "Lab session")
    assert store.minutes(stored) == CLASS_MINUTES
    assert at.multiselect(key="chosen_sessions").value == [stored]
    assert [h.value for h in at.subheader] == ["Lab session"]


def test_empty_database_says_no_sessions_yet(database):
    at = run_page()
    assert "No sessions yet" in at.info[0].value
    assert not at.get("plotly_chart") and not at.error


def test_a_database_that_cannot_be_used_gives_a_message(tmp_path, monkeypatch):
    foreign = tmp_path / "other-app.sqlite"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE sessions (id INTEGER)")
    monkeypatch.setenv("CLASS_MOOD_DB", str(foreign))
    at = run_page()
    assert "Cannot open the session database" in at.error[0].value


def test_the_analyst_numbers():
    assert total_variation(mix(happy=1), mix(happy=1)) == 0 and total_variation(mix(happy=1), mix(sad=1)) == 1
    busy_sad = [MinuteMood(0, 10, 10, 1, mix(happy=1)), MinuteMood(1, 10, 30, 3, mix(sad=1)),
                MinuteMood(2, 10, 0, 0, None)]
    assert session_distribution(busy_sad) == mix(happy=0.25, sad=0.75)
    assert session_distribution(busy_sad[2:]) is None
    assert [(c.previous, c.minute, round(c.distance, 6)) for c in mood_changes(CLASS_MINUTES)] == \
        [(1, 3, 0.8), (4, 5, 0.7), (0, 1, 0.2)]
    summary = summarize(CLASS_MINUTES, 0.7, minute_seconds=30)
    assert (summary.minutes, summary.duration_seconds, summary.minutes_with_faces, summary.minutes_above_threshold) \
        == (6, 180, 5, 1)
    assert summary.mean_faces_per_frame == pytest.approx(258 / 120) and summary.share_above_threshold == 0.2
    empty = summarize([], 0.5)
    assert (empty.duration_seconds, empty.mean_faces_per_frame, empty.share_above_threshold) == (0, None, None)


def test_cli_summary_uses_the_same_numbers(store):
    out = run_module("emotion", "sessions", "summary", "--latest", "--threshold", "0.7").stdout
    assert "History 6a" in out and "6 minute(s) of 60 s, 6 min long" in out
    assert "negative share above 70% in 1 of 5 minute(s) with faces (20%)" in out
    assert "mood change minute 2 -> 4: 80%" in out


def test_without_a_working_browser_png_export_gives_a_message(store, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    at = run_page()
    assert any("BROWSER_PATH=/nonexistent/chromium is not a browser" in info.value for info in at.info)
    assert "Draw the charts as PNG" not in [button.label for button in at.button]

    monkeypatch.setenv("BROWSER_PATH", "/bin/false")  # a file, but no browser: kaleido fails
    at = run_page()
    at.button(key=f"{session_id(store, 'History 6a')}-png").click().run()
    assert not at.exception
    assert "Charts could not be saved as PNG with /bin/false" in at.error[0].value
    with pytest.raises(charts.PngExportError, match="/bin/false"):
        charts.figures_png({"mood": charts.mood_over_time(CLASS_MINUTES)})


@requires_chromium
def test_page_in_chromium(store, tmp_path):
    with streamlit_server(PAGE) as url, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 2000}, accept_downloads=True)
        page.goto(url)
        wait_for_app(page)
        page.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot', timeout=60000)
        page.screenshot(path=tmp_path / "sessions.png", full_page=True)
        assert page.locator("h1").first.inner_text() == "Sessions"
        assert page.title() == "Sessions · Class Mood"
        sessions_tab = page.get_by_role("tabpanel", name="Sessions")
        assert sessions_tab.locator('[data-testid="stPlotlyChart"]').count() == 4
        assert sessions_tab.locator(".js-plotly-plot").count() == 4
        assert page.get_by_text("History 6a", exact=True).count() >= 1
        assert page.locator('[data-testid="stException"]').count() == 0

        page.get_by_text("Charts as PNG", exact=True).click()  # kaleido draws the PNGs with the same Debian chromium
        page.get_by_role("button", name="Draw the charts as PNG").click()
        with page.expect_download(timeout=90000) as download:
            page.get_by_role("button", name="whole-session.png").click(timeout=90000)
        png = download.value
        assert png.suggested_filename.endswith("-whole-session.png")
        assert open(png.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "sessions.png").stat().st_size > 10_000


def test_trends_of_one_class_over_time(store):
    from datetime import date

    from emotion.trends import TREND_COLUMNS, class_names, class_trend, trend_rows

    for week in (1, 2):
        seed_session(store, " maths 5B ", started=STARTED + timedelta(weeks=week), minutes=CLASS_MINUTES[3:5])
    assert class_names(store.list_sessions()) == ["maths 5B", "History 6a"]  # one class, however it was typed
    points = class_trend(store, "Maths 5b")
    assert [p.info.started_at for p in points] == [STARTED, STARTED + timedelta(weeks=1), STARTED + timedelta(weeks=2)]
    whole = session_distribution(CLASS_MINUTES)
    assert points[0].negative == pytest.approx(sum(whole[e] for e in NEGATIVE_EMOTIONS)) and points[0].mix == whole
    assert points[1].negative == pytest.approx(0.725) and points[1].faces_per_frame == 2.0
    csv = to_csv_bytes(trend_rows(points), TREND_COLUMNS).decode().splitlines()
    assert csv[0] == ",".join(TREND_COLUMNS) and len(csv) == 4
    assert [p.info.id for p in class_trend(store, "MATHS 5B", since=STARTED + timedelta(days=1))] == \
        [p.info.id for p in points[1:]]

    at = run_page()
    assert at.selectbox(key="trend-class").value == "maths 5B"  # the class of the chosen (newest) session
    at.selectbox(key="trend-class").set_value("History 6a").run()
    assert len(chart_specs(at, tab=1)[0]["data"][0]["x"]) == 1
    at.selectbox(key="trend-class").set_value("maths 5B").run()
    (trend,) = chart_specs(at, tab=1)
    assert trend["layout"]["title"]["text"] == "Sessions of maths 5B" and trend["layout"]["barmode"] == "stack"
    assert [t["name"] for t in trend["data"]] == [*EMOTIONS, "negative share", "faces per frame"]
    assert trend["data"][-2]["y"] == pytest.approx([p.negative for p in points])
    assert trend["data"][-1]["yaxis"] == "y2" and trend["data"][0]["x"] == [p.label for p in points]
    assert at.tabs[1].dataframe[0].value["session_id"].tolist() == [p.info.id for p in points]
    assert "Download trend CSV" in [b.label for b in at.tabs[1].get("download_button")]
    at.date_input(key="trend-dates").set_value((date(2024, 5, 10), date(2024, 5, 13))).run()
    assert at.tabs[1].dataframe[0].value["session_id"].tolist() == [points[1].info.id]


def test_search_by_class_name_and_date(store):
    from datetime import date

    seed_session(store, "Maths 5b", started=STARTED + timedelta(weeks=1))
    at = run_page()
    assert len(at.multiselect(key="chosen_sessions").options) == 3
    at.text_input(key="filter-title").input("MATH").run()
    assert [o.split(" — ")[:2] for o in at.multiselect(key="chosen_sessions").options] == [
        ["Maths 5b", "2024-05-13 09:00 UTC"], ["Maths 5b", "2024-05-06 09:00 UTC"]]
    assert "2 of 3 sessions match the search." in [c.value for c in at.caption]
    at.text_input(key="filter-title").input("history").run()
    assert [o.split(" — ")[:2] for o in at.multiselect(key="chosen_sessions").options] == [
        ["Maths 5b", "2024-05-13 09:00 UTC"], ["History 6a", "2024-05-07 09:00 UTC"]]  # the chosen one stays
    at.text_input(key="filter-title").input("").run()
    at.date_input(key="filter-dates").set_value((date(2024, 5, 6), date(2024, 5, 6))).run()
    assert not at.exception and "1 of 3 sessions match the search." in [c.value for c in at.caption]


def test_an_upload_already_stored_is_flagged_and_stored_again_only_when_confirmed(store):
    history = session_id(store, "History 6a")
    exported = to_csv_bytes(minute_rows(history, store.get(history).started_at, store.minutes(history)))
    at = run_page()
    at.file_uploader(key="upload").set_value(("history.csv", exported, "text/csv")).run()
    assert not at.exception
    assert f"“History 6a” (session {history}, started 2024-05-07 09:00 UTC) has the same session id" in \
        at.warning[0].value
    assert at.button(key="upload-store").disabled
    at.checkbox(key="upload-again").check().run()
    at.button(key="upload-store").click().run()
    assert not at.exception and len(store.list_sessions()) == 3
