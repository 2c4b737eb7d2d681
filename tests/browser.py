"""Test harness: a real Streamlit server on loopback and headless Debian Chromium driven by Playwright."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Run Streamlit with aioice limited to loopback candidates (a test-harness concern, kept out of the app).
_LAUNCHER = """
import sys
import aioice.ice
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=True: ["127.0.0.1"]
from streamlit.web.cli import main
sys.argv = ["streamlit", "run", *sys.argv[1:]]
main()
"""

# The options every server is started with, here and in the Dockerfile's CMD (tests/test_deploy.py checks).
SERVER_OPTIONS = ["--server.headless", "true", "--browser.gatherUsageStats", "false",
                  "--server.fileWatcherType", "none"]

requires_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                       reason="Debian's chromium is not installed (apt-get install chromium)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(script: str = "dashboard.py", env: dict | None = None, timeout: float = 60):
    """Start `streamlit run script` on a free loopback port; yields the base URL; stops it with SIGTERM."""
    with streamlit_process(script, env, timeout) as (url, _):
        yield url


@contextmanager
def streamlit_process(script: str = "dashboard.py", env: dict | None = None, timeout: float = 60):
    """As streamlit_server, yielding (URL, server process) for tests that kill the server themselves."""
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"streamlit-{port}.log", "w+")
    process = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER, str(REPO / script), *SERVER_OPTIONS,
         "--server.address", "127.0.0.1", "--server.port", str(port)],
        cwd=REPO, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                log.seek(0)
                raise RuntimeError(f"streamlit did not start:\n{log.read()}")
            time.sleep(0.3)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def launch_chromium(playwright, extra_args=()):
    """Debian's chromium under a running Playwright (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args])


@contextmanager
def chromium(extra_args: list[str] = ()):
    """One headless browser for a test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p, extra_args)
        try:
            yield browser
        finally:
            browser.close()


def wait_for_app(page, timeout_ms: int = 60000) -> None:
    """Wait until Streamlit has finished running the script (no 'Running...' status widget)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)
