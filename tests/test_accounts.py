"""Passwords, users files, sign-in throttling and the hash-password command (emotion/accounts.py)."""
import json
import re
import threading
import time

import pytest

from emotion import accounts
from emotion.accounts import (LOCAL_USER, Backoff, SignInLimiter, SignInRefused, User, configured_users, hash_password,
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


def test_failures_slow_a_name_down_with_a_growing_capped_wait(users):
    clock = FakeClock()
    limiter = SignInLimiter(per_name=Backoff(free=3, first=2, longest=10), clock=clock)
    for _ in range(3):
        with pytest.raises(SignInRefused, match="Wrong"):
            sign_in(users, limiter, "tina", "guess")
    with pytest.raises(SignInRefused, match=r"Too many failed sign-ins: try again in 2 s\."):
        sign_in(users, limiter, "tina", PASSWORD)  # even the right password waits
    assert sign_in(users, limiter, "ada", PASSWORD).name == "ada"  # other names are not affected
    waits = []
    for _ in range(4):  # every failure after the free ones doubles the wait, up to `longest`
        waits.append(limiter.wait_seconds("tina"))
        clock.now += waits[-1]
        with pytest.raises(SignInRefused, match="Wrong"):
            sign_in(users, limiter, "tina", "guess")
    assert waits == [2, 4, 8, 10]
    clock.now += 9
    with pytest.raises(SignInRefused, match="try again in 1 s"):
        sign_in(users, limiter, "tina", "guess")  # a refused try does not make the wait longer
    clock.now += 1
    assert sign_in(users, limiter, "tina", PASSWORD).name == "tina"
    assert limiter.wait_seconds("tina") == 0  # a success forgets the failures


def test_names_are_compared_normalised_and_refused_when_no_user_can_have_them(users, monkeypatch):
    limiter = SignInLimiter(per_name=Backoff(free=5, first=60, longest=60), clock=FakeClock())
    for variant in [" tina ", "tina\t", "TINA", "Tina\n", "\uff54\uff49\uff4e\uff41"]:  # the last: full-width
        with pytest.raises(SignInRefused, match="Wrong"):
            sign_in(users, limiter, variant, "guess")
    assert limiter.wait_seconds("tina") == 60  # all five counted for tina
    assert sign_in(users, SignInLimiter(), "  TiNa\t", PASSWORD).name == "tina"
    checked = []
    monkeypatch.setattr(accounts, "verify_password", lambda *args: checked.append(args) or False)
    with pytest.raises(SignInRefused, match="at most 100 characters"):
        sign_in(users, limiter, "t" * 101, "guess")
    for name in ["ti\x00na", "ti\u200bna", "ti\x1bna"]:
        with pytest.raises(SignInRefused, match="control characters"):
            sign_in(users, limiter, name, "guess")
    assert not checked


def test_concurrent_guesses_reach_the_password_check_only_as_often_as_allowed(users, monkeypatch):
    limiter = SignInLimiter(per_name=Backoff(free=5, first=60, longest=60))
    checks, lock = [], threading.Lock()

    def slow_check(password, encoded):
        with lock:
            checks.append(password)
        time.sleep(0.05)  # the real scrypt check takes about 0.1 s: time for the other guesses to pile in
        return False

    monkeypatch.setattr(accounts, "verify_password", slow_check)
    start, outcomes = threading.Barrier(40), []

    def guess(number: int) -> None:
        start.wait()
        try:
            sign_in(users, limiter, "tina", f"guess {number}", client=f"10.0.0.{number}")
        except SignInRefused as exc:
            outcomes.append(str(exc))

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(checks) <= 5 and len(outcomes) == 40
    assert sum(o.startswith("Too many failed sign-ins") for o in outcomes) >= 35


def test_the_real_user_still_signs_in_while_an_attacker_guesses(users):
    clock = FakeClock()
    limiter = SignInLimiter(per_name=Backoff(free=5, first=1, longest=60),
                            per_client=Backoff(free=20, first=60, longest=3600), clock=clock)
    attacker, teacher = "203.0.113.9", "198.51.100.4"
    for _ in range(40):  # guessing as fast as the limiter lets it, for hours
        clock.now += max(limiter.wait_seconds("tina", attacker), 0.5)
        with pytest.raises(SignInRefused):
            sign_in(users, limiter, "tina", "guess", client=attacker)
    assert limiter.wait_seconds("tina") <= 60  # the name waits at most a minute ...
    clock.now += limiter.wait_seconds("tina")
    assert sign_in(users, limiter, "tina", PASSWORD, client=teacher).name == "tina"  # ... then tina is in
    assert limiter.wait_seconds("ada", attacker) > 600  # the attacker's client waits far longer


def test_a_client_trying_many_names_is_slowed_down_and_others_are_not(users):
    clock = FakeClock()
    limiter = SignInLimiter(per_client=Backoff(free=20, first=30, longest=900), clock=clock)
    for number in range(20):
        with pytest.raises(SignInRefused, match="Wrong"):
            sign_in(users, limiter, f"name{number}", "guess", client="203.0.113.9")
    with pytest.raises(SignInRefused, match="try again in 30 s"):
        sign_in(users, limiter, "ada", PASSWORD, client="203.0.113.9")
    assert sign_in(users, limiter, "ada", PASSWORD, client="198.51.100.4").name == "ada"


def test_old_failures_are_forgotten(users):
    clock = FakeClock()
    limiter = SignInLimiter(per_name=Backoff(free=2, first=60, longest=60), forget_after=3600, clock=clock)
    for name in ("tina", "ghost"):  # unknown names are counted the same way
        for _ in range(2):
            with pytest.raises(SignInRefused, match="Wrong"):
                sign_in(users, limiter, name, "guess")
        assert limiter.wait_seconds(name) == 60
    clock.now += 59 + 3600  # an hour after the wait ended
    clock.now += 1
    with pytest.raises(SignInRefused, match="Wrong"):
        sign_in(users, limiter, "ghost", "guess")  # the first failure of a fresh count: no wait yet
    assert limiter.wait_seconds("ghost") == 0 and limiter.tracked() == 1  # only ghost is remembered now


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
    ("users.toml", "[users.tina]\nrole = 'teacher'\npassword_hash = 'HASH'\n[users.Tina]\nrole = 'analyst'\n"
                   "password_hash = 'HASH'", "user 'Tina': the same name as 'tina' (names ignore case)"),
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
