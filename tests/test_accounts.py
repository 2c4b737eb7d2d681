"""Passwords, users files, sign-in throttling and the hash-password command (emotion/accounts.py)."""
import json
import re

import pytest

from emotion.accounts import (LOCAL_USER, SignInLimiter, SignInRefused, User, configured_users, hash_password,
                              load_users_file, sign_in, verify_password)
from emotion.settings import SettingsError
from tests.conftest import run_module

PASSWORD = "correct horse battery"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def tina_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture
def users(tina_hash) -> dict[str, User]:
    return {"tina": User("tina", "teacher", tina_hash), "ada": User("ada", "analyst", tina_hash)}


def test_hash_round_trip_and_wrong_password(tina_hash):
    assert tina_hash.startswith("scrypt$32768$8$1$")
    assert verify_password(PASSWORD, tina_hash)
    assert not verify_password(PASSWORD + " ", tina_hash) and not verify_password("", tina_hash)
    assert hash_password(PASSWORD) != tina_hash  # a fresh salt every time
    with pytest.raises(ValueError, match="at least 8 characters"):
        hash_password("short")
    with pytest.raises(ValueError, match="not a hash"):
        verify_password(PASSWORD, "plain-text-password")


def test_roles_decide_whose_sessions_are_seen(users):
    assert users["tina"].session_owner == "tina"
    assert users["ada"].session_owner is None and LOCAL_USER.session_owner is None
    assert PASSWORD not in repr(users["tina"]) and "scrypt" not in repr(users["tina"])


def test_sign_in_checks_name_and_password(users):
    limiter = SignInLimiter()
    assert sign_in(users, limiter, " tina ", PASSWORD) == users["tina"]
    for name, password in [("tina", "wrong password"), ("nobody", PASSWORD)]:
        with pytest.raises(SignInRefused, match="Wrong user name or password"):
            sign_in(users, limiter, name, password)


def test_five_failures_lock_the_name_until_the_lockout_ends(users):
    clock = FakeClock()
    limiter = SignInLimiter(max_failures=5, lockout_seconds=600, clock=clock)
    for _ in range(5):
        with pytest.raises(SignInRefused, match="Wrong"):
            sign_in(users, limiter, "tina", "guess")
    with pytest.raises(SignInRefused, match="Too many failed sign-ins for tina: try again in 10 min"):
        sign_in(users, limiter, "tina", PASSWORD)  # even the right password
    assert sign_in(users, limiter, "ada", PASSWORD).name == "ada"  # other names are not affected
    clock.now += 599
    assert limiter.locked_seconds("tina") == pytest.approx(1)
    clock.now += 1
    assert sign_in(users, limiter, "tina", PASSWORD).name == "tina"


def test_success_resets_and_old_failures_expire(users):
    clock = FakeClock()
    limiter = SignInLimiter(max_failures=3, lockout_seconds=60, clock=clock)
    for _ in range(2):
        limiter.failed("tina")
    sign_in(users, limiter, "tina", PASSWORD)  # a success forgets the failures
    limiter.failed("tina")
    limiter.failed("tina")
    clock.now += 61  # these two are old now
    limiter.failed("tina")
    assert limiter.locked_seconds("tina") == 0
    limiter.failed("ghost")
    limiter.failed("ghost")
    limiter.failed("ghost")  # unknown names are locked the same way
    assert limiter.locked_seconds("ghost") == 60


def write(path, text: str):
    path.write_text(text)
    return path


def test_users_file_toml_and_json(tmp_path, tina_hash, monkeypatch):
    toml = write(tmp_path / "users.toml", f'[users.tina]\nrole = "teacher"\npassword_hash = "{tina_hash}"\n'
                                          f'[users."dev.one"]\nrole = "developer"\npassword_hash = "{tina_hash}"\n')
    assert {n: u.role for n, u in load_users_file(toml).items()} == {"tina": "teacher", "dev.one": "developer"}
    as_json = write(tmp_path / "users.json", json.dumps(
        {"users": {"ada": {"role": "analyst", "password_hash": tina_hash}}}))
    monkeypatch.setenv("CLASS_MOOD_USERS", str(as_json))
    assert list(configured_users({"auth": {"users": {"other": {}}}})) == ["ada"]  # the file wins over secrets
    monkeypatch.delenv("CLASS_MOOD_USERS")
    secrets = {"auth": {"users": {"tina": {"role": "teacher", "password_hash": tina_hash}}}}
    assert configured_users(secrets)["tina"].role == "teacher"
    assert configured_users({}) == {} and configured_users(None) == {}  # nobody configured: sign-in off


@pytest.mark.parametrize("name, text, message", [
    ("users.yaml", "users: {}", "a .toml or a .json file"),
    ("users.toml", "[users.tina\nrole = 1", "cannot be read as TOML"),
    ("users.json", "{", "cannot be read as JSON"),
    ("users.toml", "[people.tina]\nrole = 'teacher'", 'expected the users under "users"'),
    ("users.toml", "[users]\n", "lists no users"),
    ("users.toml", "[users.tina]\nrole = 'teacher'", "needs exactly role and password_hash (found: role)"),
    ("users.toml", "[users.tina]\nrole = 'teacher'\npassword_hash = 'x'\npasswd = 'y'", "needs exactly role"),
    ("users.toml", "[users.tina]\nrole = 'admin'\npassword_hash = 'HASH'",
     "role must be one of teacher, analyst, developer, not 'admin'"),
    ("users.toml", "[users.tina]\nrole = 'teacher'\npassword_hash = 'secret'", "user 'tina': password_hash is not"),
    ("users.toml", "[users.tina]\nrole = 'teacher'\npassword_hash = 'scrypt$3$8$1$AA==$AA=='", "unusable scrypt"),
    ("users.toml", "[users.'tina smith']\nrole = 'teacher'\npassword_hash = 'HASH'", "a user name has"),
    ("users.json", '{"users": ["tina"]}', "users must be a table"),
])
def test_users_file_errors_say_what_is_wrong(tmp_path, tina_hash, name, text, message):
    path = write(tmp_path / name, text.replace("HASH", tina_hash))
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_users_file(path)


def test_users_variable_naming_a_missing_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CLASS_MOOD_USERS", str(tmp_path / "nope.toml"))
    with pytest.raises(SettingsError, match="CLASS_MOOD_USERS names .*nope.toml, which is not a file"):
        configured_users()


def test_cli_hash_password_from_stdin():
    line = run_module("emotion", "users", "hash-password", input=PASSWORD + "\n").stdout.strip()
    assert verify_password(PASSWORD, line)
    refused = run_module("emotion", "users", "hash-password", input="short\n", check=False)
    assert refused.returncode == 2 and "at least 8 characters" in refused.stderr
