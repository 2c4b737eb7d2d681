"""Session reports from seeded sessions: the PDF (pages counted and text read with pypdf, chart resolution), the
HTML (user text escaped), class-only reports without per-student parts, the CLI, and the Sessions page's buttons."""
import io

import pytest
from pypdf import PdfReader
from streamlit.testing.v1 import AppTest

from emotion import charts
from emotion.report import CHART_SCALE, CHART_WIDTH_PX, PAGE_WIDTH_MM, load_report, report_html, report_pdf
from tests.browser import REPO
from tests.conftest import run_module
from tests.sessions import seed_markers, seed_session

needs_kaleido = pytest.mark.skipif(charts.png_export_problem() is not None,
                                   reason="kaleido needs Debian's chromium (apt-get install chromium)")


def pdf_text(data: bytes) -> tuple[int, str]:
    reader = PdfReader(io.BytesIO(data))
    return len(reader.pages), "\n".join(page.extract_text() for page in reader.pages)


def flat(text: str) -> str:
    return " ".join(text.split())


@needs_kaleido
def test_pdf_report_of_a_seeded_session(store):
    session_id = seed_session(store, "Maths 5b — Ünïcode, week 3")
    seed_markers(store, session_id)
    report = load_report(store, session_id)
    data, problems = report_pdf(report)
    pages, text = pdf_text(data)
    assert problems == [] and pages >= 2
    assert session_id in text and "Maths 5b — Ünïcode, week 3" in text
    assert flat(report.summary_text[0]) in flat(text)
    assert "ran for 6 min" in report.summary_text[0]
    assert any("mostly happy (41%), then neutral (31%)" in line for line in report.summary_text)
    assert any("changed most around “quiz: fractions, 5 questions” at 3:05" in line for line in report.summary_text)
    for heading in ("Mood per minute", "Whole session", "Minutes above the alert threshold (50% negative)",
                    "Sharpest changes", "Attention alerts", "Lesson markers: mood before and after",
                    "Per student (pseudonymous)"):
        assert heading in text
    images = [image for page in PdfReader(io.BytesIO(data)).pages for image in page.images]
    assert len(images) == 3  # mood, whole session, students
    dpi = min(image.image.width for image in images) / (PAGE_WIDTH_MM / 25.4)
    assert dpi >= 150 and CHART_WIDTH_PX * CHART_SCALE / (PAGE_WIDTH_MM / 25.4) >= 150


@needs_kaleido
def test_class_only_report_leaves_out_every_per_student_part(store):
    session_id = seed_session(store, "Class only", class_only=True)
    report = load_report(store, session_id)
    assert report.class_only and report.students == []
    pages, text = pdf_text(report_pdf(report)[0])
    assert pages >= 2 and "Per student" not in text and "#1" not in text and "none (class-only)" in text
    asked = load_report(store, store.list_sessions(title_contains="History")[0].id, class_only=True)
    assert asked.students == [] and "Per student" not in report_html(asked)


def test_without_a_browser_the_pdf_says_why_its_charts_are_missing(store, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", "/nonexistent/chromium")
    data, problems = report_pdf(load_report(store, store.latest().id))
    pages, text = pdf_text(data)
    assert pages >= 2 and "BROWSER_PATH=/nonexistent/chromium" in problems[0]
    assert "Chart left out" in flat(text)


def test_html_report_escapes_user_text(store):
    session_id = seed_session(store, "<script>alert(1)</script> & co")
    seed_markers(store, session_id)
    page = report_html(load_report(store, session_id))
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert page.count("<script") >= 1 and "Per student (pseudonymous)" in page  # plotly.js, inlined once


def test_cli_writes_pdf_and_html_reports(store, tmp_path):
    run_module("emotion", "sessions", "report", "--latest", "--out", tmp_path / "r.html")
    assert "History 6a" in (tmp_path / "r.html").read_text()
    wrong = run_module("emotion", "sessions", "report", "--latest", "--out", tmp_path / "r.docx", check=False)
    assert wrong.returncode == 2 and "--out must end in .pdf or .html" in wrong.stderr
    if charts.png_export_problem() is None:
        run_module("emotion", "sessions", "report", "--latest", "--out", tmp_path / "r.pdf", "--threshold", "0.7")
        pages, text = pdf_text((tmp_path / "r.pdf").read_bytes())
        assert pages >= 2 and "above 70%" in flat(text)


def test_the_sessions_page_offers_the_report_in_one_click(store):
    at = AppTest.from_file(REPO / "pages/2_Sessions.py", default_timeout=60).run()
    assert not at.exception
    labels = [button.label for button in at.get("download_button")]
    assert "Download report (PDF)" in labels and "Download report (HTML)" in labels
