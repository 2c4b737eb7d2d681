"""The deployment files: the Dockerfile starts the app the way the tests do and its HEALTHCHECK probes it
(both run here as the image would run them, no Docker engine needed), and compose.yaml wires the app, HTTPS,
TURN and PostgreSQL together with settings the app accepts; bad settings are refused by name."""
import json
import os
import re
import shlex
import subprocess
import sys
import time

import pytest
import yaml

from emotion import settings
from tests.browser import REPO, SERVER_OPTIONS, free_port
from tests.test_dashboard import _app as _dashboard
from tests.test_dashboard import app_env  # noqa: F401  (the stand-in model, active in a temporary registry)

PORT = "8501"


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continued lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def instruction(name: str) -> list[str]:
    return [arguments for kind, arguments in dockerfile() if kind == name]


def start_command() -> list[str]:
    (command,) = instruction("CMD")
    return json.loads(command)


def health_command() -> list[str]:
    (healthcheck,) = instruction("HEALTHCHECK")
    return json.loads(healthcheck.split(" CMD ", 1)[1])


def image_environment() -> dict[str, str]:
    return dict(pair.split("=", 1) for env in instruction("ENV") for pair in shlex.split(env))


def test_dockerfile_runs_the_tested_command_as_a_user_with_a_healthcheck():
    assert instruction("FROM") == ["python:3.11-slim"]
    (user,) = instruction("USER")
    assert user not in ("root", "0")
    assert start_command() == ["streamlit", "run", "dashboard.py", "--server.address", "0.0.0.0",
                               "--server.port", PORT, *SERVER_OPTIONS]
    assert f"http://localhost:{PORT}/_stcore/health" in health_command()[-1]
    environment = image_environment()
    assert environment["CLASS_MOOD_REQUIRE_AUTH"] == "1"  # a server without users refuses instead of opening up
    assert all(environment[name].startswith("/data/") for name in
               ("CLASS_MOOD_DB", "CLASS_MOOD_MODELS", "CLASS_MOOD_RUNS", "CLASS_MOOD_DATASETS"))
    assert instruction("VOLUME") == ["/data"]


def test_dockerignore_keeps_secrets_and_data_out_but_the_app_in():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".streamlit/secrets.toml", ".env", "users.toml", ".venv", "data", ".git"} <= ignored
    needed = {"dashboard.py", "pages", "emotion", "ui", "training", "weights", ".streamlit", ".streamlit/config.toml",
              "haarcascade_frontalface_default.xml", "requirements.txt"}
    assert not needed & ignored


def test_the_image_command_serves_and_its_healthcheck_passes(tmp_path):
    """The CMD as the image runs it (its environment, /data in a temporary folder) on a free loopback port."""
    port = str(free_port())
    command = [sys.executable, "-m", *start_command()]
    command[command.index("0.0.0.0")] = "127.0.0.1"
    command[command.index(PORT)] = port
    environment = {name: value.replace("/data", str(tmp_path)) for name, value in image_environment().items()}
    health = [sys.executable if part == "python" else part.replace(f":{PORT}/", f":{port}/")
              for part in health_command()]
    server = subprocess.Popen(command, cwd=REPO, env={**os.environ, **environment, "HOME": str(tmp_path)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while subprocess.run(health, capture_output=True, check=False).returncode != 0:
            assert server.poll() is None, f"streamlit exited:\n{server.stdout.read()}"
            assert time.monotonic() < deadline, "the healthcheck did not pass within 90 s"
            time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert subprocess.run(health, capture_output=True, check=False).returncode != 0  # and fails once the server is gone


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_compose_services(compose):
    services = compose["services"]
    assert set(services) == {"app", "https", "turn", "postgres"}
    assert services["postgres"]["profiles"] == ["postgres"]  # optional: SQLite in the volume by default
    assert "ports" not in services["app"]  # reached through HTTPS only
    assert "--to app:8501" in services["https"]["command"] and "443:443" in services["https"]["ports"]
    turn = " ".join(services["turn"]["command"])
    assert "--listening-port=3478" in turn and "--min-port=" in turn and "--max-port=" in turn
    subnet = compose["networks"]["class-mood"]["ipam"]["config"][0]["subnet"]
    assert subnet == "172.30.77.0/24" and "--allowed-peer-ip=172.30.77.0-172.30.77.255" in turn
    assert "/data" in {volume.split(":")[1] for volume in services["app"]["volumes"]}


def test_compose_gives_the_app_settings_it_accepts(compose, monkeypatch):
    environment = compose["services"]["app"]["environment"]
    filled = {name: re.sub(r"\$\{(\w+)(:-([^}]*))?\}", lambda m: m.group(3) or f"<{m.group(1)}>", value)
              for name, value in environment.items()}
    for name, value in filled.items():
        monkeypatch.setenv(name, value)
    (server,) = settings.ice_servers()
    assert server["urls"][1] == "turn:<DOMAIN>:3478?transport=udp" and server["credential"] == "<TURN_PASSWORD>"
    env_example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                       if line and not line.startswith("#"))
    used = set(re.findall(r"\$\{(\w+)", (REPO / "compose.yaml").read_text()))
    assert used - {"POSTGRES_PASSWORD", "CLASS_MOOD_DB"} <= set(env_example)  # those two: commented, for postgres


@pytest.mark.parametrize("name, value, message", [
    ("CLASS_MOOD_RETENTION_DAYS", "30 days", "CLASS_MOOD_RETENTION_DAYS must be a whole number, not '30 days'"),
    ("CLASS_MOOD_RETENTION_DAYS", "-1", "CLASS_MOOD_RETENTION_DAYS must be at least 0, not '-1'"),
    ("CLASS_MOOD_IDLE_MINUTES", "nan", "CLASS_MOOD_IDLE_MINUTES must be at least 1, not 'nan'"),
    ("CLASS_MOOD_IDLE_MINUTES", "0.5", "CLASS_MOOD_IDLE_MINUTES must be at least 1, not '0.5'"),
    ("CLASS_MOOD_MAX_UPLOAD_MB", "1e3", "CLASS_MOOD_MAX_UPLOAD_MB must be a whole number, not '1e3'"),
    ("CLASS_MOOD_MAX_UPLOAD_MB", "0", "CLASS_MOOD_MAX_UPLOAD_MB must be at least 1, not '0'"),
    ("CLASS_MOOD_REQUIRE_AUTH", "si", "CLASS_MOOD_REQUIRE_AUTH must be 1 or 0 (or true/false, yes/no, on/off)"),
    ("CLASS_MOOD_ICE_SERVERS", "[{'urls': 1}]", "CLASS_MOOD_ICE_SERVERS is not valid JSON"),
    ("CLASS_MOOD_USERS", "/nonexistent/users.toml", "CLASS_MOOD_USERS names /nonexistent/users.toml, which is not"),
])
def test_bad_settings_are_refused_with_the_variable_named(name, value, message, monkeypatch):
    getter = {"CLASS_MOOD_RETENTION_DAYS": settings.retention_days, "CLASS_MOOD_IDLE_MINUTES": settings.idle_minutes,
              "CLASS_MOOD_MAX_UPLOAD_MB": settings.max_upload_mb, "CLASS_MOOD_REQUIRE_AUTH": settings.require_auth,
              "CLASS_MOOD_ICE_SERVERS": settings.ice_servers, "CLASS_MOOD_USERS": settings.users_file}[name]
    monkeypatch.setenv(name, value)
    with pytest.raises(settings.SettingsError, match=re.escape(message)):
        getter()


def test_settings_defaults_and_good_values(monkeypatch):
    for name in ("CLASS_MOOD_RETENTION_DAYS", "CLASS_MOOD_IDLE_MINUTES", "CLASS_MOOD_MAX_UPLOAD_MB",
                 "CLASS_MOOD_REQUIRE_AUTH", "CLASS_MOOD_PRIVACY_NOTICE"):
        monkeypatch.delenv(name, raising=False)
    assert (settings.retention_days(), settings.idle_minutes(), settings.max_upload_mb(), settings.require_auth()) \
        == (0, 60.0, 500, False)
    assert "No images, video or names are stored" in settings.privacy_notice()
    for name, value in [("CLASS_MOOD_RETENTION_DAYS", " 180 "), ("CLASS_MOOD_IDLE_MINUTES", "7.5"),
                        ("CLASS_MOOD_MAX_UPLOAD_MB", "800"), ("CLASS_MOOD_REQUIRE_AUTH", "True"),
                        ("CLASS_MOOD_PRIVACY_NOTICE", "Our school's notice.")]:
        monkeypatch.setenv(name, value)
    assert (settings.retention_days(), settings.idle_minutes(), settings.max_upload_mb(), settings.require_auth(),
            settings.privacy_notice()) == (180, 7.5, 800, True, "Our school's notice.")


def test_the_video_upload_limit_reaches_the_uploader_and_stays_under_streamlits(app_env, database,  # noqa: F811
                                                                               monkeypatch, camera):
    monkeypatch.setenv("CLASS_MOOD_MAX_UPLOAD_MB", "300")
    at = _dashboard().run()
    at.sidebar.radio[0].set_value("Recorded video").run()
    assert not at.exception and at.get("file_uploader")[0].proto.max_upload_size_mb == 300
    monkeypatch.setenv("CLASS_MOOD_MAX_UPLOAD_MB", "5000")  # above .streamlit/config.toml's server.maxUploadSize
    at.run()
    assert "CLASS_MOOD_MAX_UPLOAD_MB (5000) is above Streamlit's server.maxUploadSize (1024)" in at.error[0].value
    assert not at.get("file_uploader")
