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
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from emotion.settings import SettingsError, users_file

ROLES = ("teacher", "analyst", "developer")
ALL_SESSIONS_ROLES = ("analyst", "developer")  # a teacher sees their own sessions only
MIN_PASSWORD_LENGTH = 8
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1  # 32 MiB and ~0.1 s per hash: slow for guessing, fine for sign-in
MAX_NAME_LENGTH = 100  # the length of the session store's owner column
USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,%d}" % MAX_NAME_LENGTH)
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
    users, normalised = {}, {}
    for name, entry in entries.items():
        where = f"{source}: user {name!r}"
        if not USER_NAME.fullmatch(name):
            raise SettingsError(f"{where}: a user name has 1 to {MAX_NAME_LENGTH} letters, digits, '.', '_', '@' "
                                "or '-'")
        if (same := normalised.setdefault(normalise_name(name), name)) != name:
            raise SettingsError(f"{where}: the same name as {same!r} (names ignore case)")
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

def normalise_name(name: str) -> str:
    """A typed user name as sign-in compares it: without surrounding blanks, NFKC-normalised and case-folded, so
    " tina ", "tina\\t", "TINA" and a full-width "ｔｉｎａ" are all tina; SignInRefused for a name no user can have."""
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise SignInRefused(f"A user name has at most {MAX_NAME_LENGTH} characters.")
    if any(unicodedata.category(char).startswith("C") for char in name):  # control, format (zero-width), unassigned
        raise SignInRefused("A user name cannot contain control characters.")
    return unicodedata.normalize("NFKC", name).casefold().strip()


@dataclass(frozen=True)
class Backoff:
    """`free` failures cost nothing; each one after them makes the next try wait: `first` seconds, doubling with
    every further failure up to `longest`. A growing wait rather than a lockout, so guessing someone's password
    slows them down for at most `longest` instead of locking them out."""
    free: int
    first: float
    longest: float

    def wait(self, failures: int) -> float:
        if failures < self.free:
            return 0.0
        return min(self.first * 2.0 ** min(failures - self.free, 64), self.longest)


NAME_BACKOFF = Backoff(free=5, first=5.0, longest=60.0)  # the real user waits at most a minute
CLIENT_BACKOFF = Backoff(free=20, first=5.0, longest=15 * 60.0)  # one guessing client waits up to 15 minutes


@dataclass
class _Failures:
    count: int = 0  # failures in a row, counting tries still being checked
    last: float = 0.0  # when the last try started
    wait_until: float = 0.0


class SignInLimiter:
    """Failed sign-ins per user name and per client (an IP address), each slowed down by its Backoff.

    A try is counted as a failure before its password is checked (`claim`) and forgiven when it succeeds, all
    under one lock, so simultaneous guesses cannot slip past the count. One per server process, shared by every
    browser session; names that do not exist are counted the same way. A count is forgotten `forget_after`
    seconds after its wait ended without another try, so guessed names do not pile up (and a client that waits
    out the longest wait every time is not forgiven).
    """

    def __init__(self, per_name: Backoff = NAME_BACKOFF, per_client: Backoff = CLIENT_BACKOFF,
                 forget_after: float = 3600.0, clock: Callable[[], float] = time.monotonic):
        self.backoff = {"name": per_name, "client": per_client}
        self.forget_after, self.clock = forget_after, clock
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._lock = threading.Lock()

    def _keys(self, name: str, client: str) -> list[tuple[str, str]]:
        return [("name", name)] + ([("client", client)] if client else [])  # "": a client not known

    def _wait(self, keys, now: float) -> float:
        return max([self._failures[key].wait_until - now for key in keys if key in self._failures] + [0.0])

    def wait_seconds(self, name: str, client: str = "") -> float:
        """How long a try for `name` (normalised) from `client` must wait; 0 when it may try now."""
        with self._lock:
            return self._wait(self._keys(name, client), self.clock())

    def claim(self, name: str, client: str = "") -> float:
        """Either 0, and this try is counted as failed until `succeeded` says otherwise, or the seconds to wait
        (and nothing is counted: trying while asked to wait does not make the wait longer)."""
        now, keys = self.clock(), self._keys(name, client)
        with self._lock:
            self._forget_old(now)
            wait = self._wait(keys, now)
            if wait > 0:
                return wait
            for kind, key in keys:
                failures = self._failures.setdefault((kind, key), _Failures())
                failures.count += 1
                failures.last, failures.wait_until = now, now + self.backoff[kind].wait(failures.count)
            return 0.0

    def succeeded(self, name: str, client: str = "") -> None:
        """The right password: the name's failures are forgotten, and this try is not held against the client."""
        with self._lock:
            self._failures.pop(("name", name), None)
            failures = self._failures.get(("client", client))
            if failures:
                failures.count = max(0, failures.count - 1)
                failures.wait_until = failures.last + self.backoff["client"].wait(failures.count)

    def tracked(self) -> int:
        """How many names and clients have failures remembered."""
        with self._lock:
            return len(self._failures)

    def _forget_old(self, now: float) -> None:
        for key in [key for key, f in self._failures.items()
                    if now - max(f.last, f.wait_until) >= self.forget_after]:
            del self._failures[key]


def _wait_text(seconds: float) -> str:
    return f"{math.ceil(seconds)} s" if seconds < 90 else f"{math.ceil(seconds / 60)} min"


def sign_in(users: Mapping[str, User], limiter: SignInLimiter, name: str, password: str, client: str = "") -> User:
    """The user with this name and password; SignInRefused when the name or the client must wait first, or either
    is wrong. `client` says where the try comes from (an IP address; "" when not known)."""
    key = normalise_name(name)
    wait = limiter.claim(key, client)
    if wait:
        raise SignInRefused(f"Too many failed sign-ins: try again in {_wait_text(wait)}.")
    user = next((u for n, u in users.items() if normalise_name(n) == key), None)
    if verify_password(password, user.password_hash if user else _decoy_hash()) and user:
        limiter.succeeded(key, client)
        return user
    raise SignInRefused("Wrong user name or password.")
