"""Sign-in and roles on the three pages under Streamlit's AppTest, with users from a temporary CLASS_MOOD_USERS
file (or the app's secrets), and the single-user local mode when nobody is configured."""
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest

from emotion.accounts import hash_password
from emotion.session_csv import minute_rows, to_csv_bytes
from emotion.store import SessionStore
from tests.browser import REPO, chromium, requires_chromium, streamlit_server, wait_for_app
from tests.sessions import CLASS_MINUTES, STARTED
from tests.synthetic import gallery_frame
from tests.test_dashboard import app_env  # noqa: F401  (the stand-in model, active in a temporary registry)
from ui.auth import SIGNED_IN, _limiter
from ui.common import PRIVACY_ACKNOWLEDGED

PASSWORD = "a long classroom password"
ROLES = {"tina": "teacher", "tom": "teacher", "ada": "analyst", "dev": "developer"}
DASHBOARD, SESSIONS, TRAINING = "dashboard.py", "pages/2_Sessions.py", "pages/3_Training.py"
PAGE_CONTENT = ["title", "caption", "markdown", "radio", "selectbox", "multiselect", "slider", "file_uploader",
                "tabs", "info", "warning", "dataframe", "plotly_chart", "expander", "checkbox"]


@pytest.fixture(scope="module")
def password_hash() -> str:
    return hash_password(PASSWORD)


def users_toml(password_hash: str, roles: dict[str, str] = ROLES) -> str:
    return "".join(f'[users.{name}]\nrole = "{role}"\npassword_hash = "{password_hash}"\n'
                   for name, role in roles.items())


@pytest.fixture
def users(tmp_path, monkeypatch, password_hash, database):
    """Four users in a CLASS_MOOD_USERS file, a fresh session database, and no failed sign-ins remembered."""
    path = tmp_path / "users.toml"
    path.write_text(users_toml(password_hash))
    monkeypatch.setenv("CLASS_MOOD_USERS", str(path))
    _limiter.clear()
    return path


def run(page: str, at: AppTest | None = None) -> AppTest:
    at = (AppTest.from_file(str(REPO / page), default_timeout=90) if at is None else at).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def sign_in(at: AppTest, name: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="sign-in-name").input(name)
    at.text_input(key="sign-in-password").input(password)
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(element.value for element in at.get(kind))


def shows_only_the_sign_in_form(at: AppTest) -> bool:
    return ([t.label for t in at.text_input] == ["User name", "Password"]
            and [b.label for b in at.button] == ["Sign in"]
            and not any(at.get(kind) for kind in PAGE_CONTENT) and not at.sidebar.children)


@pytest.mark.parametrize("page", [DASHBOARD, SESSIONS, TRAINING])
def test_every_page_shows_the_sign_in_form_and_nothing_else(users, page, runs_root, model_dir, camera):
    at = run(page)
    assert shows_only_the_sign_in_form(at)
    assert [s.value for s in at.subheader] == ["Sign in to Class Mood"]
    sign_in(at, "tina", "not the password")
    assert "Wrong user name or password." in texts(at, "error") and shows_only_the_sign_in_form(at)


@pytest.mark.parametrize("page, name", [(TRAINING, "tina"), (TRAINING, "ada"), (DASHBOARD, "ada")])
def test_a_role_the_page_is_not_for_is_refused(users, page, name, runs_root, model_dir, camera):
    at = sign_in(run(page), name)
    assert f"{name} has the role {ROLES[name]}" in texts(at, "error")
    assert not at.title and not at.tabs and not at.get("file_uploader")
    assert f"Signed in as **{name}** ({ROLES[name]})" in texts(at.sidebar, "caption")


def test_a_developer_opens_the_training_page(users, runs_root, model_dir):
    at = sign_in(run(TRAINING), "dev")
    assert at.title[0].value == "Training" and not at.error


def seed_owned_sessions(database) -> dict[str, str]:
    """A session stored without sign-in, then one of tom's and a newer one of tina's; ids by owner."""
    store = SessionStore(database)
    return {owner: store.create_session(title=f"Class of {owner or 'nobody'}", source_kind="camera", owner=owner,
                                        started_at=STARTED + timedelta(days=day), status="ended")
            for day, owner in enumerate(["", "tom", "tina"])}


def test_an_analyst_sees_every_session_and_a_teacher_only_their_own(users, database):
    ids = seed_owned_sessions(database)
    analyst = sign_in(run(SESSIONS), "ada")
    assert [o.split(" — ")[0] for o in analyst.multiselect(key="chosen_sessions").options] == [
        "Class of tina", "Class of tom", "Class of nobody"]

    teacher = sign_in(run(SESSIONS), "tina")
    assert [o.split(" — ")[0] for o in teacher.multiselect(key="chosen_sessions").options] == ["Class of tina"]
    assert [h.value for h in teacher.subheader] == ["Class of tina"]
    teacher.session_state["chosen_sessions"] = [ids["tom"], ids["tina"]]  # another teacher's session, by id
    run(SESSIONS, teacher)
    assert teacher.multiselect(key="chosen_sessions").value == [ids["tina"]]
    assert [h.value for h in teacher.subheader] == ["Class of tina"]
    assert not any(ids["tom"] in (b.key or "") for b in teacher.button)


def test_a_teachers_stored_upload_stays_theirs(users, database):
    at = sign_in(run(SESSIONS), "tina")
    csv = to_csv_bytes(minute_rows("lab", STARTED, CLASS_MINUTES))
    at.file_uploader(key="upload").set_value(("lab.csv", csv, "text/csv")).run()
    at.button(key="upload-store").click().run()
    assert not at.exception
    assert [(s.title, s.owner) for s in SessionStore(database).list_sessions()] == [("lab", "tina")]
    assert [h.value for h in at.subheader] == ["lab"]


def test_sign_out_idle_timeout_and_a_changed_account(users, password_hash):
    at = sign_in(run(SESSIONS), "ada")
    assert at.title[0].value == "Sessions"
    at.sidebar.button(key="sign-out").click().run()
    assert shows_only_the_sign_in_form(at) and SIGNED_IN not in at.session_state

    sign_in(at, "ada")
    at.session_state[SIGNED_IN] = {**at.session_state[SIGNED_IN], "last_active": 0.0}  # idle since 1970
    run(SESSIONS, at)
    assert "Signed out after 60 minutes without activity" in texts(at, "info")
    assert [t.label for t in at.text_input] == ["User name", "Password"] and not at.title

    sign_in(at, "ada")
    users.write_text(users_toml(password_hash, {"ada": "developer", "tina": "teacher"}))  # a new role applies
    run(SESSIONS, at)
    assert "Signed in as **ada** (developer)" in texts(at.sidebar, "caption")
    users.write_text(users_toml(hash_password("a new password for ada"), {"ada": "analyst"}))
    run(SESSIONS, at)
    assert "Your account was changed" in texts(at, "info") and not at.title


def test_repeated_failures_slow_the_name_down_without_locking_it(users):
    at = run(SESSIONS)
    for name in ["tina", " tina ", "tina\t", "TINA", "Tina"]:  # one name however it is typed
        sign_in(at, name, "guess")
    sign_in(at, "tina")
    assert "Too many failed sign-ins: try again in " in texts(at, "error")
    assert not at.title
    assert sign_in(at, "ada").title[0].value == "Sessions"  # another name does not wait


def proxied_from(monkeypatch, chain: str) -> None:
    """Requests as a reverse proxy passes them on: from loopback, the browser's address last in X-Forwarded-For."""
    from streamlit.runtime.context import ContextProxy, StreamlitHeaders

    monkeypatch.setattr(ContextProxy, "headers", property(lambda self: StreamlitHeaders(
        [("Host", "class.example.org"), ("X-Forwarded-For", chain)])))


def test_failures_are_counted_per_client_too(users, monkeypatch):
    at = run(SESSIONS)
    proxied_from(monkeypatch, "10.1.1.1, 203.0.113.7")  # the first address is whatever the client claimed
    for number in range(20):
        sign_in(at, f"guess{number}", "guess")
    sign_in(at, "ada")
    assert "Too many failed sign-ins: try again in " in texts(at, "error") and not at.title
    proxied_from(monkeypatch, "203.0.113.7, 198.51.100.4")  # another browser behind the same proxy
    assert sign_in(at, "ada").title[0].value == "Sessions"


def test_users_from_the_app_secrets(monkeypatch, password_hash, database):
    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    at = AppTest.from_file(str(REPO / SESSIONS), default_timeout=60)
    at.secrets["auth"] = {"users": {"ada": {"role": "analyst", "password_hash": password_hash}}}
    assert shows_only_the_sign_in_form(run(SESSIONS, at))
    assert sign_in(at, "ada").title[0].value == "Sessions"


def test_a_broken_users_file_stops_every_page_with_a_message(users, runs_root, model_dir):
    users.write_text('[users.tina]\nrole = "principal"\npassword_hash = "x"\n')
    at = run(TRAINING)
    assert "Sign-in is misconfigured:" in texts(at, "error") and "role must be one of" in texts(at, "error")
    assert not at.title and not at.text_input


def test_without_users_sign_in_is_off_on_this_computer(database, runs_root, model_dir, monkeypatch):
    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    at = run(SESSIONS)
    assert at.title[0].value == "Sessions" and "No sessions yet" in texts(at, "info")
    assert "sign-in off: no users configured" in texts(at.sidebar, "caption")
    assert run(TRAINING).title[0].value == "Training"


REFUSED_OFF = "Sign-in is off because no users are configured, so Class Mood serves only the computer it runs on"


@pytest.fixture
def server_address():
    """Set Streamlit's server.address as `streamlit run --server.address` would; restored afterwards."""
    from streamlit import config

    before = config.get_option("server.address")
    yield lambda address: config.set_option("server.address", address)
    config.set_option("server.address", before)


@pytest.mark.parametrize("address, refused", [("203.0.113.7", True), ("192.168.1.20", True),
                                              ("::ffff:127.0.0.1", False)])
def test_without_users_only_this_computer_is_served(database, monkeypatch, address, refused):
    from streamlit.runtime.context import ContextProxy

    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    monkeypatch.setattr(ContextProxy, "ip_address", property(lambda self: address))  # AppTest has no real client
    at = run(SESSIONS)
    assert (REFUSED_OFF in texts(at, "error")) == refused
    assert bool(at.title) != refused


@pytest.mark.parametrize("address, refused", [(None, True), ("0.0.0.0", True), ("::", True), ("192.168.1.20", True),
                                              ("127.0.0.1", False), ("localhost", False), ("::1", False)])
def test_without_users_the_server_must_listen_on_loopback_only(database, monkeypatch, server_address, address,
                                                                refused):
    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    server_address(address)
    at = run(SESSIONS)
    assert (REFUSED_OFF in texts(at, "error")) == refused and bool(at.title) != refused
    if refused:
        assert "server.address" in texts(at, "error")


@pytest.mark.parametrize("headers", [
    [("Host", "localhost:8501"), ("X-Forwarded-For", "203.0.113.7")],  # a proxy on this computer
    [("Host", "localhost:8501"), ("Forwarded", "for=203.0.113.7")],
    [("Host", "class.example.org")],  # a proxy that forwards nothing but the Host
    [("Host", "127.0.0.1:8501"), ("Origin", "https://class.example.org")],  # ... or nothing but the browser's Origin
    [("Host", "evil.example:8501"), ("Origin", "http://evil.example:8501")],  # DNS rebinding onto 127.0.0.1
])
def test_without_users_a_request_through_a_proxy_is_refused(database, monkeypatch, headers):
    from streamlit.runtime.context import ContextProxy, StreamlitHeaders

    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    monkeypatch.setattr(ContextProxy, "headers", property(lambda self: StreamlitHeaders(headers)))
    at = run(SESSIONS)
    assert REFUSED_OFF in texts(at, "error") and not at.title
    local = [("Host", "localhost:8501"), ("Origin", "http://localhost:8501")]  # a browser on this computer
    monkeypatch.setattr(ContextProxy, "headers", property(lambda self: StreamlitHeaders(local)))
    assert run(SESSIONS, at).title[0].value == "Sessions"


def test_without_users_a_deployment_that_requires_sign_in_refuses(database, monkeypatch):
    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    monkeypatch.setenv("CLASS_MOOD_REQUIRE_AUTH", "1")
    at = run(SESSIONS)
    assert "Sign-in is required here (CLASS_MOOD_REQUIRE_AUTH) but no users are configured" in texts(at, "error")
    assert not at.title
    monkeypatch.setenv("CLASS_MOOD_REQUIRE_AUTH", "maybe")
    assert "CLASS_MOOD_REQUIRE_AUTH must be 1 or 0" in texts(run(SESSIONS), "error")


def test_settings_in_the_app_secrets(database, monkeypatch):
    """Root-level secrets are settings too; a TOML boolean (which Streamlit leaves out of the environment) as well."""
    monkeypatch.delenv("CLASS_MOOD_USERS", raising=False)
    monkeypatch.setenv("CLASS_MOOD_REQUIRE_AUTH", "0")  # so the value the app puts there is undone afterwards
    at = AppTest.from_file(str(REPO / SESSIONS), default_timeout=60)
    at.secrets["CLASS_MOOD_REQUIRE_AUTH"] = True
    assert "Sign-in is required here" in texts(run(SESSIONS, at), "error")


def test_the_teachers_live_session_is_stored_as_theirs(users, app_env, database, camera):  # noqa: F811
    at = sign_in(run(DASHBOARD), "tina")
    assert "tell the class" in texts(at, "info") and "camera is off" not in texts(at, "info")
    at.button(key="privacy-acknowledge").click().run()
    assert at.session_state[PRIVACY_ACKNOWLEDGED] and "camera is off" in texts(at, "info")
    camera.state.playing = True
    run(DASHBOARD, at)
    live = at.session_state["camera"]["live"]
    frame, _ = gallery_frame(["happy", "sad"], cols=2)
    live.process(frame)
    live.finish()
    assert [(s.owner, s.source_kind) for s in SessionStore(database).list_sessions()] == [("tina", "camera")]


@requires_chromium
def test_signing_in_with_a_real_browser(users, database):
    with streamlit_server(SESSIONS, env={"CLASS_MOOD_USERS": str(users)}) as url, chromium() as browser:
        page = browser.new_page()
        page.goto(url)
        wait_for_app(page)
        assert page.locator("h1").count() == 0
        page.get_by_role("textbox", name="User name").fill("tina")
        page.get_by_role("textbox", name="Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("h1:has-text('Sessions')", timeout=60000)
        assert page.get_by_text("Signed in as").count() == 1
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("text=Sign in to Class Mood", timeout=60000)
        assert page.locator('[data-testid="stException"]').count() == 0
