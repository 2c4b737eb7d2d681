"""Sign-in and roles for every page: `user = require_role("teacher", "developer")` at the top of a page.

Users, password hashes and sign-in throttling live in emotion/accounts.py. With no users configured,
sign-in is off and the app serves only the computer it runs on, to one local user who may do
everything: only while Streamlit listens on loopback alone (server.address), and only to requests that
show no sign of a proxy or of another host name; with CLASS_MOOD_REQUIRE_AUTH=1 no users is a
configuration error instead. A signed-in
browser session ends after CLASS_MOOD_IDLE_MINUTES without activity, or when the user's entry
changes. Signing out forgets everything the browser session held (chosen sessions, a finished
live session's charts), so the next person at that browser starts afresh; reloading the page
does the same.
"""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from typing import NoReturn
from urllib.parse import urlsplit

import streamlit as st
from streamlit import config

from emotion.accounts import (LOCAL_USER, MAX_NAME_LENGTH, SignInLimiter, SignInRefused, User, configured_users,
                              sign_in)
from emotion.settings import SettingsError, idle_minutes, require_auth
from ui.common import load_secrets, plain
from ui.jobs import sidebar_jobs
from ui.nav import sidebar_nav

SIGNED_IN = "signed_in"  # session state: {"name", "password_hash", "last_active" (time.time())}
MAX_PASSWORD_LENGTH = 1024
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-Ip", "Via")


@st.cache_resource(show_spinner=False)
def _limiter() -> SignInLimiter:
    """One per server process, so failures count across every browser session."""
    return SignInLimiter()


def _refuse(message: str) -> NoReturn:
    st.error(message)
    st.stop()


def require_role(*roles: str) -> User:
    """The user this page may serve. Otherwise it shows the sign-in form or why not, and stops the
    script on the server, so nothing below the call runs."""
    try:
        users = configured_users(load_secrets())
        required, idle_seconds = require_auth(), idle_minutes() * 60
    except SettingsError as exc:
        _refuse(f"Sign-in is misconfigured: {exc}")
    if not users:
        user = _local_user(required)
        _sidebar(user)
        return user
    user = _signed_in_user(users, idle_seconds) or _sign_in_form(users)
    with st.sidebar:
        st.caption(f"Signed in as **{plain(user.name)}** ({user.role})")
        st.button("Sign out", key="sign-out", on_click=st.session_state.clear)
    _sidebar(user)
    if user.role not in roles:
        _refuse(plain(f"This page is for the role(s) {', '.join(roles)}; {user.name} has the role {user.role}."))
    return user


def _sidebar(user: User) -> None:
    """On every page: links to the pages the user may open, and their recorded videos being analysed."""
    sidebar_nav(user.role)
    sidebar_jobs(user.name)


def keep_alive() -> None:
    """Count as activity for the idle timeout. A live session's page only reruns its fragments,
    which do not pass `require_role`, so they call this: a teacher watching a class stays signed in."""
    if SIGNED_IN in st.session_state:
        st.session_state[SIGNED_IN]["last_active"] = time.time()


def _local_user(required: bool) -> User:
    if required:
        _refuse("Sign-in is required here (CLASS_MOOD_REQUIRE_AUTH) but no users are configured: add "
                "[auth.users.NAME] tables to .streamlit/secrets.toml or name a users file in CLASS_MOOD_USERS.")
    if problem := _not_this_computer():
        _refuse(plain(f"Sign-in is off because no users are configured, so Class Mood serves only the computer it "
                      f"runs on, and {problem}. Configure users to use it from elsewhere (README: 'Sign-in, roles "
                      "and privacy')."))
    st.sidebar.caption("sign-in off: no users configured")
    return LOCAL_USER


def _is_loopback(host: str | None) -> bool:
    """Whether a host name or address is this computer's loopback (IPv4-mapped IPv6 too)."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def _host(value: str, header: str) -> str | None:
    try:
        return urlsplit(value if header == "Origin" else f"//{value}").hostname
    except ValueError:  # e.g. an unclosed [ of an IPv6 address
        return None


def _not_this_computer() -> str:
    """Why this request may come from elsewhere ("" when nothing says so). The TCP peer alone proves nothing: a
    reverse proxy on this computer makes every browser look local. So the server must listen on loopback only,
    and a request must carry no proxy header and name this computer in Host and Origin (which browsers send,
    and which also stops DNS rebinding). Without a request (AppTest) only the listening address is checked."""
    address = config.get_option("server.address")
    if not _is_loopback(address):
        return f"the server listens on {address or 'every network interface'} (server.address), not on loopback only"
    headers = st.context.headers
    if proxied := [name for name in PROXY_HEADERS if name in headers]:
        return f"this request came through a proxy ({', '.join(proxied)})"
    for header in ("Host", "Origin"):
        if header in headers and not _is_loopback(_host(headers[header], header)):
            return (f"the page was opened as {headers[header]} ({header}); open it as "
                    f"http://localhost:{config.get_option('server.port')}")
    ip = st.context.ip_address  # None for loopback; not a str without a client (AppTest)
    if isinstance(ip, str) and not _is_loopback(ip):
        return f"the browser is at {ip}"
    return ""


def _client() -> str:
    """Where a sign-in comes from, to count failures per client: the address a reverse proxy added last to
    X-Forwarded-For (the one it saw; the earlier ones are whatever the client claimed), else the TCP peer."""
    hops = [hop.strip() for value in st.context.headers.get_all("X-Forwarded-For") for hop in value.split(",")]
    hops = [hop for hop in hops if hop]
    ip = st.context.ip_address
    return (hops[-1] if hops else ip if isinstance(ip, str) else "localhost")[:100]


def _signed_in_user(users: Mapping[str, User], idle_seconds: float) -> User | None:
    """The user signed in in this browser session, while still configured as they were and not idle too long."""
    signed_in = st.session_state.get(SIGNED_IN)
    if not signed_in:
        return None
    now = time.time()
    user = users.get(signed_in["name"])
    if user is None or user.password_hash != signed_in["password_hash"]:
        st.session_state.clear()
        st.info("Your account was changed; please sign in again.")
        return None
    if now - signed_in["last_active"] > idle_seconds:
        st.session_state.clear()
        st.info(f"Signed out after {idle_seconds / 60:.0f} minutes without activity; please sign in again.")
        return None
    signed_in["last_active"] = now
    return user


def _sign_in_form(users: Mapping[str, User]) -> User:
    """Show the sign-in form and stop; a successful sign-in reruns the page signed in."""
    with st.form("sign-in"):
        st.subheader("Sign in to Class Mood")
        name = st.text_input("User name", key="sign-in-name", autocomplete="username", max_chars=MAX_NAME_LENGTH)
        password = st.text_input("Password", type="password", key="sign-in-password", autocomplete="current-password",
                                 max_chars=MAX_PASSWORD_LENGTH)
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            user = sign_in(users, _limiter(), name, password, client=_client())
        except SignInRefused as exc:
            st.error(plain(exc))
        else:
            st.session_state[SIGNED_IN] = {"name": user.name, "password_hash": user.password_hash,
                                           "last_active": time.time()}
            st.rerun()
    st.stop()
