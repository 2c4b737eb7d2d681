"""A session report a teacher can hand on, as PDF (fpdf2, charts drawn by plotly + kaleido) or HTML.

    report = load_report(store, session_id)              # threshold: the one the session ran with
    problems = write_report(report, Path("maths.pdf"))   # or .html; problems: why a chart is missing, if one is
    report.summary_text                                  # the plain-language summary at the top

One list of sections (`report_sections`) feeds both formats, so the PDF and the HTML say the same. In class-only
mode (the session's, or asked for) the per-student parts are left out. No Streamlit here.
"""
from __future__ import annotations

import html
import io
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
from fpdf import FPDF
from PIL import Image

from emotion import charts
from emotion.aggregate import MinuteMood, StudentMinute
from emotion.alerts import AlertRule
from emotion.labels import EMOTIONS, NEGATIVE_EMOTIONS
from emotion.markers import Marker, MoodAround, format_time, mood_around
from emotion.session_numbers import (MoodChange, SessionSummary, format_duration, mood_changes,
                                     session_distribution, summarize)
from emotion.store import Alert, SessionInfo, SessionStore

REPORT_SUFFIXES = (".pdf", ".html")
CHART_WIDTH_PX, CHART_SCALE = 900, 2  # 1800 px across the 180 mm text width of A4: about 250 dpi
PAGE_WIDTH_MM = 180
MAX_STUDENT_ROWS = 60  # the tracker may split a student into several tracks; the rest is summed up in a line
FONT_FOLDERS = ("/usr/share/fonts/truetype/dejavu",)  # Debian's fonts-dejavu-core: every script a title may use
CAVEAT = ("These numbers estimate which emotion faces show on video, minute by minute; they do not tell what a "
          "student feels, and a minute with few faces says little about the class.")


@dataclass(frozen=True)
class StudentSummary:
    """One pseudonymous student track over the session."""
    track_id: int
    minutes: int
    faces: int
    mix: dict[str, float]

    @property
    def top(self) -> str:
        return max(self.mix, key=self.mix.get)

    @property
    def negative(self) -> float:
        return sum(self.mix[e] for e in NEGATIVE_EMOTIONS)


@dataclass(frozen=True)
class SessionReport:
    info: SessionInfo
    minutes: list[MinuteMood]
    alerts: list[Alert]
    markers: list[Marker]
    students: list[StudentSummary]  # [] in class-only mode
    student_minutes: list[StudentMinute]
    threshold: float
    class_only: bool
    summary: SessionSummary = field(init=False)
    mix: dict[str, float] | None = field(init=False)
    changes: list[MoodChange] = field(init=False)
    around: list[MoodAround] = field(init=False)

    def __post_init__(self):
        set_ = object.__setattr__  # derived once from the fields above (the dataclass is frozen)
        set_(self, "summary", summarize(self.minutes, self.threshold, self.info.minute_seconds))
        set_(self, "mix", session_distribution(self.minutes))
        set_(self, "changes", [c for c in mood_changes(self.minutes) if c.distance > 0])
        set_(self, "around", [mood_around(self.minutes, m, self.info.minute_seconds) for m in self.markers])

    @property
    def high_minutes(self) -> list[MinuteMood]:
        return [m for m in self.minutes if m.shares and m.negative_share > self.threshold]

    @property
    def summary_text(self) -> list[str]:
        """A few plain sentences for the top of the report."""
        info, summary = self.info, self.summary
        said = [f"“{info.title}” started on {info.started_at:%d %B %Y at %H:%M} UTC and ran for "
                f"{format_duration(summary.duration_seconds)} ({summary.minutes} rows of {info.minute_seconds:g} s)."]
        if self.mix is None:
            return [*said, "No faces were seen, so there is no mood to report.", CAVEAT]
        most = max(m.students for m in self.minutes)
        said.append(f"On average {summary.mean_faces_per_frame:.1f} faces were visible per analysed frame, and up "
                    f"to {most} students were told apart in one minute.")
        first, second = sorted(self.mix, key=self.mix.get, reverse=True)[:2]
        said.append(f"Over the whole session the faces looked mostly {first} ({self.mix[first]:.0%}), then "
                    f"{second} ({self.mix[second]:.0%}).")
        high = self.high_minutes
        said.append(f"Negative expressions ({', '.join(NEGATIVE_EMOTIONS)}) were above {self.threshold:.0%} in "
                    f"{len(high)} of {summary.minutes_with_faces} minutes with faces"
                    + (f" (minute {', '.join(str(m.minute + 1) for m in high[:8])}"
                       f"{', …' if len(high) > 8 else ''})." if high else "."))
        said.append({0: "No attention alert was raised.", 1: "1 attention alert was raised."}.get(
            len(self.alerts), f"{len(self.alerts)} attention alerts were raised."))
        if self.changes:
            change = self.changes[0]
            said.append(f"The sharpest change came from minute {change.previous + 1} to {change.minute + 1}, when "
                        f"{change.distance:.0%} of the class mix changed.")
        telling = [a for a in self.around if a.change is not None]
        if telling:
            biggest = max(telling, key=lambda a: a.change)
            said.append(f"Of {len(self.markers)} lesson marker(s), the mood changed most around "
                        f"“{biggest.marker.caption}” at {format_time(biggest.marker.seconds)}: negative share "
                        f"{MoodAround.negative(biggest.before):.0%} before, {MoodAround.negative(biggest.after):.0%} "
                        "after.")
        return [*said, CAVEAT]


def student_summaries(students: list[StudentMinute]) -> list[StudentSummary]:
    """Per track: minutes seen, faces, and the faces-weighted mix of its minutes."""
    by_track: dict[int, list[StudentMinute]] = {}
    for s in students:
        by_track.setdefault(s.track_id, []).append(s)
    found = []
    for track_id, rows in sorted(by_track.items()):
        faces = sum(r.faces for r in rows)
        weight = faces or len(rows)
        mix = {e: sum(r.shares[e] * (r.faces if faces else 1) for r in rows) / weight for e in EMOTIONS}
        found.append(StudentSummary(track_id, len(rows), faces, mix))
    return found


def load_report(store: SessionStore, session_id: str, *, threshold: float | None = None,
                class_only: bool = False) -> SessionReport:
    """The report of a stored session; `threshold` None uses the one the session ran with; `class_only` leaves
    the per-student parts out (they are left out of a class-only session anyway)."""
    info = store.get(session_id)
    if threshold is None:
        threshold = info.settings.get("alert_rule", {}).get("negative_threshold", AlertRule().negative_threshold)
    class_only = class_only or info.class_only
    students = [] if class_only else store.student_minutes(session_id)
    return SessionReport(info, store.minutes(session_id), store.alerts(session_id), store.markers(session_id),
                         student_summaries(students), students, threshold, class_only)


# ---- what the report says, for both formats
@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    figure: str | None = None  # a key of report_figures()
    new_page: bool = False


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def report_sections(report: SessionReport) -> list[Section]:
    info, summary, seconds = report.info, report.summary, report.info.minute_seconds
    facts = [["Session", info.id], ["Started", f"{info.started_at:%Y-%m-%d %H:%M} UTC"],
             ["Duration", format_duration(summary.duration_seconds)], ["Status", info.status],
             ["Source", f"{info.source_kind}: {info.source_name}" if info.source_name else info.source_kind],
             ["Faces per frame",
              "–" if summary.mean_faces_per_frame is None else f"{summary.mean_faces_per_frame:.1f}"],
             ["Students (most in a minute)", str(max((m.students for m in report.minutes), default=0))],
             [f"Minutes above {report.threshold:.0%} negative",
              f"{summary.minutes_above_threshold} of {summary.minutes_with_faces} with faces"],
             ["Attention alerts", str(len(report.alerts))], ["Lesson markers", str(len(report.markers))],
             ["Model", info.model_name or "–"],
             ["Per-student numbers", "none (class-only)" if report.class_only else "pseudonymous ids (#1, #2, …)"]]
    sections = [
        Section("Summary", report.summary_text),
        Section("Mood per minute", ["Share of each emotion per minute (stacked), faces per frame on the right axis; "
                                    "dashed lines are lesson markers, red bands minutes with an attention alert."],
                figure="mood"),
        Section("Key numbers", columns=["", ""], rows=facts, new_page=True),
        Section("Whole session", ["The session's mix, each minute weighted by its faces."],
                ["emotion", "share"], [[e, _pct(report.mix[e])] for e in EMOTIONS] if report.mix else [],
                figure="mix"),
        Section(f"Minutes above the alert threshold ({report.threshold:.0%} negative)",
                [] if report.high_minutes else ["None."], ["minute", "starts at", "negative", "top emotion"],
                [[str(m.minute + 1), format_time(m.minute * seconds), _pct(m.negative_share), m.dominant]
                 for m in report.high_minutes]),
        Section("Sharpest changes", [] if report.changes else ["No change between minutes with faces."],
                ["from minute", "to minute", "mix changed"],
                [[str(c.previous + 1), str(c.minute + 1), _pct(c.distance)] for c in report.changes]),
        Section("Attention alerts", [] if report.alerts else ["None were raised."], ["minute", "alert"],
                [[str(a.minute + 1), a.message] for a in report.alerts]),
        Section("Lesson markers: mood before and after",
                ["Before: the two minutes before the marker's minute; after: its minute and the next."]
                if report.markers else ["No lesson markers were set."],
                ["time", "marker", "negative before", "negative after", "top before", "top after", "changed"],
                [[format_time(a.marker.seconds), a.marker.caption, _pct(MoodAround.negative(a.before)),
                  _pct(MoodAround.negative(a.after)), _top(a.before), _top(a.after), _pct(a.change)]
                 for a in report.around]),
    ]
    if not report.class_only:
        shown = sorted(report.students, key=lambda s: s.faces, reverse=True)[:MAX_STUDENT_ROWS]
        rest = len(report.students) - len(shown)
        sections.append(Section(
            "Per student (pseudonymous)",
            ["Ids are pseudonyms given by the tracker in this session only; one student who left the picture may "
             "come back under a new id."] + ([f"{rest} shorter track(s) are not listed."] if rest else []),
            ["student", "minutes", "faces", "top emotion", "negative"],
            [[f"#{s.track_id}", str(s.minutes), str(s.faces), s.top, _pct(s.negative)]
             for s in sorted(shown, key=lambda s: s.track_id)],
            figure="students" if report.student_minutes else None, new_page=True))
    return sections


def _top(mix: dict[str, float] | None) -> str:
    return max(mix, key=mix.get) if mix else "–"


def report_figures(report: SessionReport) -> dict[str, go.Figure]:
    """The report's charts by name: markers on the timelines, alert minutes shaded."""
    mood = charts.mood_over_time(report.minutes, title=f"Class mood per minute: {html.escape(report.info.title)}")
    for minute in sorted({a.minute for a in report.alerts}):
        mood.add_vrect(x0=minute + 0.5, x1=minute + 1.5, fillcolor="red", opacity=0.12, line_width=0)
    figures = {"mood": charts.add_markers(mood, report.markers, report.info.minute_seconds),
               "mix": charts.session_distribution_bars(report.minutes)}
    if report.student_minutes:
        figures["students"] = charts.add_markers(charts.student_timelines(report.student_minutes), report.markers,
                                                 report.info.minute_seconds)
    return figures


def chart_pngs(figures: dict[str, go.Figure]) -> tuple[dict[str, bytes], str | None]:
    """Each figure as a PNG at CHART_SCALE times its size, and why there are none (None when drawn). Not
    charts.figures_png: that one draws at screen resolution, too coarse for print."""
    if problem := charts.png_export_problem():
        return {}, problem
    os.environ.setdefault("BROWSER_PATH", charts.png_browser())
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder) / f"{index}.png" for index in range(len(figures))]
        try:
            pio.write_images(list(figures.values()), paths, width=CHART_WIDTH_PX,
                             height=[fig.layout.height or 400 for fig in figures.values()], scale=CHART_SCALE)
        except Exception as exc:  # kaleido drives a browser process: anything it raises means no image
            return {}, f"the charts could not be drawn ({type(exc).__name__}: {exc})"
        return {name: path.read_bytes() for name, path in zip(figures, paths)}, None


# ---- PDF
class _Pdf(FPDF):
    def __init__(self, footer_text: str):
        super().__init__(format="A4")
        self.footer_text = footer_text
        self.set_auto_page_break(True, margin=15)
        self.set_margins(15, 15, 15)
        folder = next((Path(f) for f in FONT_FOLDERS if (Path(f) / "DejaVuSans.ttf").is_file()), None)
        if folder:
            self.add_font("body", "", folder / "DejaVuSans.ttf")
            self.add_font("body", "B", folder / "DejaVuSans-Bold.ttf")
            self.family = "body"
        else:  # fpdf2's built-in fonts cover Latin-1 only: other characters are replaced
            self.family = "helvetica"

    def text_of(self, text: str) -> str:
        return text if self.family == "body" else text.encode("latin-1", "replace").decode("latin-1")

    def paragraph(self, text: str, height: float, *, size: float = 10, style: str = "") -> None:
        self.set_font(self.family, style, size)
        self.multi_cell(0, height, self.text_of(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def footer(self):
        self.set_y(-12)
        self.set_font(self.family, size=8)
        self.cell(0, 5, self.text_of(f"{self.footer_text} · page {self.page_no()} of {{nb}}"), align="C")


def report_pdf(report: SessionReport, pngs: dict[str, bytes] | None = None) -> tuple[bytes, list[str]]:
    """The report as PDF bytes, and the problems met (a chart that could not be drawn)."""
    problems = []
    if pngs is None:
        pngs, problem = chart_pngs(report_figures(report))
        problems += [problem] if problem else []
    pdf = _Pdf(f"Class Mood report · session {report.info.id}")
    pdf.add_page()
    pdf.paragraph(report.info.title, 9, size=18, style="B")
    pdf.paragraph(f"Class Mood session report · {report.info.started_at:%d %B %Y}", 6)
    for section in report_sections(report):
        if section.new_page:
            pdf.add_page()
        pdf.ln(3)
        pdf.paragraph(section.heading, 8, size=13, style="B")
        for paragraph in section.paragraphs:
            pdf.paragraph(paragraph, 5.5)
            pdf.ln(1.5)
        if section.figure and section.figure in pngs:
            width, height = Image.open(io.BytesIO(pngs[section.figure])).size
            if pdf.will_page_break(PAGE_WIDTH_MM * height / width):  # a chart stays on one page
                pdf.add_page()
            pdf.image(io.BytesIO(pngs[section.figure]), w=PAGE_WIDTH_MM)
        elif section.figure and problems:
            pdf.paragraph(f"(Chart left out: {problems[0]})", 5.5)
        if section.rows:
            pdf.set_font(pdf.family, size=9)
            with pdf.table(line_height=5.5, first_row_as_headings=any(section.columns)) as table:
                for cells in ([section.columns] if any(section.columns) else []) + section.rows:
                    row = table.row()
                    for cell in cells:
                        row.cell(pdf.text_of(cell))
            pdf.set_font(pdf.family, size=10)
    return bytes(pdf.output()), problems


# ---- HTML
def report_html(report: SessionReport) -> str:
    """One self-contained HTML file (plotly.js inlined once, so it opens offline); user text escaped."""
    figures, parts, first = report_figures(report), [], True
    for section in report_sections(report):
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
        if section.figure:
            parts.append(figures[section.figure].to_html(full_html=False, include_plotlyjs=first,
                                                         default_width="100%"))
            first = False
        if section.rows:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in section.columns) if any(section.columns) else ""
            body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                           for row in section.rows)
            parts.append(f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>")
    title = html.escape(report.info.title)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title} · Class Mood report</title>"
            "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
            "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #bbb;padding:.2rem .5rem;"
            "text-align:left}</style></head><body>"
            f"<h1>{title}</h1><p>Class Mood session report · {report.info.started_at:%d %B %Y} · "
            f"session {html.escape(report.info.id)}</p>{''.join(parts)}</body></html>")


def write_report(report: SessionReport, path: Path) -> list[str]:
    """Write the report as PDF or HTML (by the suffix); returns the problems met."""
    if path.suffix.lower() == ".html":
        path.write_text(report_html(report), encoding="utf-8")
        return []
    data, problems = report_pdf(report)
    path.write_bytes(data)
    return problems
