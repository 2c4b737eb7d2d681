"""More than one server: two app processes (two ports, as behind one load balancer) sharing one PostgreSQL,
a class streamed into each from its own browser; the Sessions page of either server lists both classes.

    CLASS_MOOD_TEST_PG_URL=postgresql+psycopg://USER:PASSWORD@127.0.0.1:5432/DB .venv/bin/python -m pytest -q \
        tests/test_two_servers.py

Skips without that server (.ci/run starts Debian's PostgreSQL and sets it) or without Debian's chromium.
"""

import pytest

from emotion.store import SessionStore
from tests.browser import launch_chromium, requires_chromium, streamlit_server, wait_for_app
from tests.test_dashboard import _fake_camera, _start_camera, _stop_and_wait, app_env  # noqa: F401 (a fixture)
from tests.conftest import postgres_schema


@pytest.fixture
def shared_database():
    """A fresh schema on the PostgreSQL server named by CLASS_MOOD_TEST_PG_URL, as a URL both servers use."""
    with postgres_schema() as url:
        yield url


def _listed_on_sessions_page(browser, url: str) -> str:
    """The text of the Sessions page of the server at `url` with its session picker opened."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    page.goto(f"{url}/Sessions")
    wait_for_app(page)
    page.wait_for_selector('[data-testid="stMultiSelect"]', timeout=90000)
    page.locator('[data-testid="stMultiSelect"] input').first.click()  # lists the sessions not yet chosen
    page.get_by_role("option").first.wait_for(timeout=30000)
    text = page.locator("body").inner_text()
    page.close()
    return text


@requires_chromium
def test_two_servers_sharing_one_postgresql_list_each_others_classes(app_env, shared_database, tmp_path):  # noqa: F811
    from playwright.sync_api import sync_playwright

    store = SessionStore(shared_database)
    happy = _fake_camera(tmp_path / "happy.y4m", ["happy"] * 4, cols=2)
    sad = _fake_camera(tmp_path / "sad.y4m", ["sad"] * 6, cols=3)
    env = {"CLASS_MOOD_DB": shared_database}
    with streamlit_server("dashboard.py", env) as first_url, streamlit_server("dashboard.py", env) as second_url, \
            sync_playwright() as playwright:
        first, second = launch_chromium(playwright, happy), launch_chromium(playwright, sad)
        _, happy_camera, happy_session = _start_camera(first, first_url, store, "Class on server 1")
        _, sad_camera, sad_session = _start_camera(second, second_url, store, "Class on server 2")
        assert _stop_and_wait(happy_camera, store, happy_session.id).status == "ended"
        assert _stop_and_wait(sad_camera, store, sad_session.id).status == "ended"
        for browser, url in ((first, second_url), (second, first_url)):
            listed = _listed_on_sessions_page(browser, url)
            assert "Class on server 1" in listed and "Class on server 2" in listed
    assert {s.title for s in store.list_sessions()} == {"Class on server 1", "Class on server 2"}
