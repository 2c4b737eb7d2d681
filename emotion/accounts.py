"""Users, roles, password hashes and sign-in throttling: the part of signing in that needs no Streamlit.

Users come from the file named by CLASS_MOOD_USERS (TOML or JSON), else from the app's secrets:

    [users.tina]                   # in .streamlit/secrets.toml: [auth.users.tina]
    role = "teacher"               # teacher, analyst or developer
    password_hash = "scrypt$..."   # printed by `python -m emotion users hash-password`

    {"users": {"tina": {"role": "teacher", "password_hash": "scrypt$..."}}}   # the same as JSON

Passwords are kept as salted scrypt hashes whose cost parameters are part of the hash, so they
can be raised later without invalidating the hashes already handed out.
"""
from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emotion.settings import SettingsError, users_file

ROLES = ("teacher", "analyst", "developer")
ALL_SESSIONS_ROLES = ("analyst", "developer")  # a teacher sees their own sessions only
MIN_PASSWORD_LENGTH = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1  # 32 MiB and ~0.1 s per hash: slow for guessing, fine for sign-in
MAX_FAILURES = 5
LOCKOUT_SECONDS = 15 * 60
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,100}")  # 100: the length of the session store's owner column
SECRETS_SOURCE = ".streamlit/secrets.toml [auth.users]"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str = field(default="", repr=False)

    @property
    def session_owner(self) -> str | None:
        """Whose stored sessions this user may see: their own, or everyone's (None)."""
        return None if self.role in ALL_SESSIONS_ROLES else self.name


# Sign-in off (no users configured): the one person at this computer may do everything,
# and their sessions keep the owner "" that sessions stored without sign-in have.
LOCAL_USER = User("", "developer")


class SignInRefused(Exception):
    """A sign-in that did not succeed; the message can be shown to the person signing in."""


# ---- password hashes

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    memory = 128 * r * (n + p + 2)  # what OpenSSL's scrypt allocates
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=memory + (1 << 20),
                          dklen=length)


def _parse_hash(encoded) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, digest) of a hash made by `hash_password`; ValueError says what is wrong."""
    parts = encoded.split("$") if isinstance(encoded, str) else []
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError("password_hash is not a hash from `python -m emotion users hash-password` "
                         "(scrypt$N$r$p$salt$hash)")
    try:
        n, r, p = map(int, parts[1:4])
        salt, digest = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        raise ValueError("password_hash has a malformed number or base64 part") from None
    if not (1 < n <= 2 ** 20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and salt and digest):
        raise ValueError(f"password_hash has unusable scrypt parameters (N={n}, r={r}, p={p})")
    return n, r, p, salt, digest


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password: str, encoded: str) -> bool:
    n, r, p, salt, digest = _parse_hash(encoded)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(digest)), digest)


@functools.cache
def _decoy_hash() -> str:
    """Checked against for unknown names, so a wrong name takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


# ---- configured users

def parse_users(entries, source: str) -> dict[str, User]:
    """`entries` maps user names to {role, password_hash}; `source` names their origin in error messages."""
    if not isinstance(entries, Mapping):
        raise SettingsError(f"{source}: users must be a table of user names, each with role and password_hash")
    users = {}
    for name, entry in entries.items():
        where = f"{source}: user {name!r}"
        if not USER_NAME.fullmatch(name):
            raise SettingsError(f"{where}: a user name has 1 to 100 letters, digits, '.', '_', '@' or '-'")
        if not isinstance(entry, Mapping) or set(entry) != {"role", "password_hash"}:
            found = ", ".join(entry) if isinstance(entry, Mapping) else type(entry).__name__
            raise SettingsError(f"{where} needs exactly role and password_hash (found: {found or 'nothing'})")
        if entry["role"] not in ROLES:
            raise SettingsError(f"{where}: role must be one of {', '.join(ROLES)}, not {entry['role']!r}")
        try:
            _parse_hash(entry["password_hash"])
        except ValueError as exc:
            raise SettingsError(f"{where}: {exc}") from None
        users[name] = User(name, entry["role"], entry["password_hash"])
    return users


def load_users_file(path: Path) -> dict[str, User]:
    kind = path.suffix.lower()
    if kind not in (".toml", ".json"):
        raise SettingsError(f"{path}: a users file is a .toml or a .json file")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if kind == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:  # unreadable, not UTF-8, not TOML / JSON
        raise SettingsError(f"{path} cannot be read as {kind[1:].upper()}: {exc}") from None
    if not isinstance(data, dict) or "users" not in data:
        raise SettingsError(f'{path}: expected the users under "users" ([users.NAME] tables in TOML)')
    users = parse_users(data["users"], str(path))
    if not users:
        raise SettingsError(f"{path} lists no users")
    return users


def configured_users(app_secrets: Mapping | None = None) -> dict[str, User]:
    """The users of the file named by CLASS_MOOD_USERS if it is set, else those in the [auth.users] section of
    the app's secrets; {} (sign-in off) when there are none."""
    path = users_file()
    if path:
        return load_users_file(path)
    auth = (app_secrets or {}).get("auth") or {}
    return parse_users(auth.get("users") or {}, SECRETS_SOURCE) if isinstance(auth, Mapping) else {}


# ---- signing in

@dataclass
class _Failures:
    count: int = 0  # failures in a row, since the last lockout
    last: float = 0.0
    locked_until: float = 0.0


class SignInLimiter:
    """Failed sign-ins per user name: `max_failures` in a row lock the name for `lockout_seconds`.

    One per server process, shared by every browser session (so a new tab does not start afresh);
    safe to use from Streamlit's script threads. Names that do not exist are counted the same way.
    """

    def __init__(self, max_failures: int = MAX_FAILURES, lockout_seconds: float = LOCKOUT_SECONDS,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures, self.lockout_seconds, self.clock = max_failures, lockout_seconds, clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def locked_seconds(self, name: str) -> float:
        """How much longer `name` is locked; 0 when it may try."""
        with self._lock:
            failures = self._failures.get(name)
            return max(0.0, failures.locked_until - self.clock()) if failures else 0.0

    def failed(self, name: str) -> None:
        now = self.clock()
        with self._lock:
            self._forget_old(now)
            failures = self._failures.setdefault(name, _Failures())
            failures.count += 1
            failures.last = now
            if failures.count >= self.max_failures:
                failures.count, failures.locked_until = 0, now + self.lockout_seconds

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)

    def _forget_old(self, now: float) -> None:
        """Failures older than a lockout period stop counting, so guessed names do not pile up."""
        for name in [name for name, f in self._failures.items()
                     if now - f.last >= self.lockout_seconds and now >= f.locked_until]:
            del self._failures[name]


def sign_in(users: Mapping[str, User], limiter: SignInLimiter, name: str, password: str) -> User:
    """The user with this name and password; SignInRefused when the name is locked or either is wrong."""
    name = name.strip()
    locked = limiter.locked_seconds(name)
    if locked:
        raise SignInRefused(f"Too many failed sign-ins for {name}: try again in {math.ceil(locked / 60)} min.")
    user = users.get(name)
    if verify_password(password, user.password_hash if user else _decoy_hash()) and user:
        limiter.succeeded(name)
        return user
    limiter.failed(name)
    raise SignInRefused("Wrong user name or password.")
