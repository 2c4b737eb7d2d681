"""User text (session titles, file names, session ids from a CSV, user names) is shown as plain text: fuzzed through
ui.common.plain, and on the Sessions page under AppTest, whose Markdown bodies and labels are rendered here with
markdown-it-py (CommonMark, as Streamlit's renderer) to see what a browser would get."""
import html
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from emotion.session_csv import minute_rows, to_csv_bytes
from emotion.store import TITLE_LENGTH, SessionStore
from tests.conftest import REPO
from tests.sessions import CLASS_MINUTES, STARTED, seed_session
from ui.common import chart_label, plain

MARKDOWN = MarkdownIt("commonmark").enable(["table", "strikethrough"])
SYNTAX = "\\`*_~[](){}<>!#&;:$|@=+-./'\" \t\n\r"  # the characters Markdown and HTML are made of
TEXT = st.text(st.one_of(st.sampled_from(SYNTAX), st.characters(codec="utf-8"), st.sampled_from("ab1 ")), max_size=60)
HOSTILE = ["![p](http://host/pixel.png)", "**bold** _it_ <img src=x onerror=alert(1)>", ":red[red] $x^2$ `code`",
           "# heading", "- item", "1. item", "www.host.org or http://host or a@host.org", "[link](javascript:x)",
           "&lt;b&gt; \\*", "line\nbreak | table |\n|---|"]
GFM_AUTOLINK = re.compile(r"(?i)(?<!\\)(?::(?=//)|(?<=www)\.|@)")  # GFM turns http://, www. and a@b.c into links


def shown(markdown: str) -> str:
    """The text a browser shows for a Markdown body; AssertionError if it holds any element but paragraphs."""
    rendered = MARKDOWN.render(markdown)
    inner = re.sub(r"^<p>(.*)</p>\n$", r"\1", rendered, flags=re.DOTALL)
    assert "<" not in inner and (inner == "" or inner != rendered), rendered
    return html.unescape(inner)


def as_typed(text: str) -> str:
    """What a browser can show of typed text on one line: control characters (line breaks) as single spaces."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", text).strip()


@settings(max_examples=500, deadline=None)
@given(TEXT)
def test_any_text_is_shown_as_typed_and_makes_no_markdown(text):
    escaped = plain(text)
    assert shown(escaped) == as_typed(text)
    assert shown(f"Yes, delete “{escaped}” with its minutes") == f"Yes, delete “{as_typed(text)}” with its minutes"
    assert not GFM_AUTOLINK.search(escaped) and not re.search(r"(?<!\\)\$", escaped)  # beyond CommonMark


def test_ordinary_text_stays_readable():
    for text in ["Maths 5b", "broken.csv row 1 (header), column 3: 'x' is not a number", "class_of_5b"]:
        assert plain(text) == text


def test_chart_labels_show_html_as_typed():
    assert chart_label('<a href="http://host">x</a> & y') == "&lt;a href=&quot;http://host&quot;&gt;x&lt;/a&gt; &amp; y"


APP_MARKUP = {"p", "strong", "ul", "li", "code"}  # what the page's own Markdown makes


def rendered(at: AppTest) -> list[str]:
    """The text a browser shows for every Markdown body and widget label the page drew; AssertionError for any
    element the page's own Markdown does not make (an image, a link, emphasis, a heading, HTML ...)."""
    bodies = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "success", "info",
                                   "warning", "error") for e in at.get(kind)]
    labels = [w.label for kind in ("checkbox", "button", "text_input", "multiselect", "selectbox", "expander",
                                   "toggle", "slider", "file_uploader") for w in at.get(kind)]
    texts = []
    for markdown in bodies + labels:
        markup = MARKDOWN.render(markdown)
        assert set(re.findall(r"</?([a-z0-9]+)", markup)) <= APP_MARKUP, markup
        texts.append(html.unescape(re.sub(r"<[^>]+>", "", markup)).strip())
    return texts


def test_the_sessions_page_shows_user_text_as_typed(database):
    store = SessionStore(database)
    for title in HOSTILE:
        seed_session(store, title[:TITLE_LENGTH])
    at = AppTest.from_file(str(REPO / "pages/2_Sessions.py"), default_timeout=60).run()
    at.multiselect(key="chosen_sessions").set_value([s.id for s in store.list_sessions()[:3]]).run()
    upload = to_csv_bytes(minute_rows("=HYPERLINK(\"http://host\")", STARTED, CLASS_MINUTES))
    at.file_uploader(key="upload").set_value(("![x](http://host/p.png).csv", upload, "text/csv")).run()
    assert not at.exception, [e.value for e in at.exception]
    texts = rendered(at)
    chosen = [s.title for s in store.list_sessions()[:3]]
    assert [shown(h.value) for h in at.subheader] == ["Comparison", *map(as_typed, chosen),
                                                      "![x](http://host/p.png).csv (uploaded)"]
    assert any(f"Yes, delete “{as_typed(chosen[0])}”" in text for text in texts)
    assert f"![x](http://host/p.png).csv: {len(CLASS_MINUTES)} valid minute(s), shown below." in texts
    legend = [trace["name"] for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"]]
    assert legend == [chart_label(title) for title in chosen] + [chart_label("![x](http://host/p.png).csv (uploaded)")]

    at.checkbox(key=f"{store.list_sessions()[0].id}-confirm-delete").check().run()
    at.button(key=f"{store.list_sessions()[0].id}-delete").click().run()
    assert f"Deleted “{as_typed(chosen[0])}”." in [shown(s.value) for s in at.success]
