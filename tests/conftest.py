import os
import uuid
from contextlib import contextmanager
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("CLASS_MOOD_CACHE", tempfile.mkdtemp(prefix="class-mood-cache-"))  # ONNX exports of test models
REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

import ui  # noqa: E402,F401  (loads pylibsrtp before TensorFlow: the other order segfaults, see ui/__init__.py)

from tests.synthetic import write_folder_dataset  # noqa: E402


def run_module(*args, env=None, timeout=600, check=True, input=None):
    """Run `python -m ...` from the repository like a user would, `input` on its stdin; returns the CompletedProcess."""
    result = subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})}, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def wait_until(check, timeout=120.0):
    """Poll `check` until it returns something truthy; that value, or a failed test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {check}")


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory) -> Path:
    """Drawn faces in FER2013's folder layout: 40 per emotion to train on, 40 to validate on."""
    return write_folder_dataset(tmp_path_factory.mktemp("fer") / "fer", 40, seed=3)


@pytest.fixture(scope="session")
def stand_in_model(synthetic_data, tmp_path_factory) -> Path:
    """A small CNN trained by training.train on the drawn faces: a fast stand-in classifier."""
    run = tmp_path_factory.mktemp("runs") / "small"
    run_module("training.train", "--data", synthetic_data, "--out", run, "--arch", "small", "--epochs", "15",
               "--batch-size", "16", "--lr", "3e-3", "--warmup-epochs", "1", "--early-stop", "20", "--no-augment",
               "--weight-decay", "0", "--label-smoothing", "0", "--balance", "none")
    return run / "best.keras"


@pytest.fixture
def model_dir(tmp_path, monkeypatch) -> Path:
    """An empty registry folder used as CLASS_MOOD_MODELS."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("CLASS_MOOD_MODELS", str(folder))
    return folder


@pytest.fixture
def runs_root(tmp_path, monkeypatch) -> Path:
    """An empty runs root used as CLASS_MOOD_RUNS, with uploads going to a temporary CLASS_MOOD_DATASETS."""
    monkeypatch.setenv("CLASS_MOOD_RUNS", str(tmp_path / "runs"))
    monkeypatch.setenv("CLASS_MOOD_DATASETS", str(tmp_path / "datasets"))
    return tmp_path / "runs"


@pytest.fixture
def database(tmp_path, monkeypatch) -> str:
    """A fresh SQLite file used as CLASS_MOOD_DB."""
    url = f"sqlite:///{tmp_path / 'sessions.sqlite'}"
    monkeypatch.setenv("CLASS_MOOD_DB", url)
    return url


@pytest.fixture
def store(database):
    """The store named by CLASS_MOOD_DB with two sessions: 'Maths 5b', then the newer 'History 6a'."""
    from datetime import timedelta

    from emotion.store import SessionStore
    from tests.sessions import STARTED, seed_session

    store = SessionStore(database)
    seed_session(store, "Maths 5b")
    seed_session(store, "History 6a", started=STARTED + timedelta(days=1))
    return store


@pytest.fixture
def camera(monkeypatch):
    """streamlit-webrtc's component cannot run under AppTest: it is replaced by a camera that is off until a
    test sets `camera.state.playing = True` (real video streams in the browser tests)."""
    from types import SimpleNamespace

    import streamlit_webrtc

    context = SimpleNamespace(state=SimpleNamespace(playing=False))
    monkeypatch.setattr(streamlit_webrtc, "webrtc_streamer", lambda **kwargs: context)
    return context


PG_URL_VARIABLE = "CLASS_MOOD_TEST_PG_URL"


@contextmanager
def postgres_schema():
    """A fresh schema on the PostgreSQL server named by CLASS_MOOD_TEST_PG_URL, as a URL that uses it; dropped
    afterwards. Skips the test without that variable."""
    import sqlalchemy as sa

    url = os.environ.get(PG_URL_VARIABLE)
    if not url:
        pytest.skip(f"{PG_URL_VARIABLE} is not set (.ci/run starts Debian's PostgreSQL and sets it)")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as db:
        db.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with admin.begin() as db:
            db.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _postgres_listening(port: int = 5432) -> bool:
    import socket

    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def pytest_terminal_summary(terminalreporter):
    """Say which kinds of tests were skipped for want of what, and how to run them, beside pytest's summary."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons = {}
    for report in skipped:
        reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
        for needle, what in (("CLASS_MOOD_TEST_PG_URL", "PostgreSQL"), ("chromium", "browser"),
                             ("shared", "../shared")):
            if needle in reason:
                reasons[what] = reasons.get(what, 0) + 1
    if not reasons:
        return
    hints = {"PostgreSQL": "set CLASS_MOOD_TEST_PG_URL=postgresql+psycopg://USER:PASSWORD@127.0.0.1:5432/DB"
                           + (" (a PostgreSQL server is listening on 127.0.0.1:5432 here)"
                              if _postgres_listening() else " (.ci/run installs and starts one)"),
             "browser": "install Debian's chromium (sudo apt-get install chromium)",
             "../shared": "put the shared datasets and bench beside the repository"}
    terminalreporter.write_sep("-", "skipped for want of something")
    for what, count in reasons.items():
        terminalreporter.write_line(f"{count} {what} test(s) skipped: {hints[what]}")
