"""Sign-in and roles for every page: `user = require_role("teacher", "developer")` at the top of a page.

Users, password hashes and sign-in throttling live in emotion/accounts.py. With no users configured,
sign-in is off and the app serves only the computer it runs on, to one local user who may do
everything; with CLASS_MOOD_REQUIRE_AUTH=1 that is a configuration error instead. A signed-in
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

import streamlit as st

from emotion.accounts import LOCAL_USER, SignInLimiter, SignInRefused, User, configured_users, sign_in
from emotion.settings import SettingsError, idle_minutes, require_auth
from ui.common import load_secrets

SIGNED_IN = "signed_in"  # session state: {"name", "password_hash", "last_active" (time.time())}


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
        return _local_user(required)
    user = _signed_in_user(users, idle_seconds) or _sign_in_form(users)
    with st.sidebar:
        st.caption(f"Signed in as **{user.name}** ({user.role})")
        st.button("Sign out", key="sign-out", on_click=st.session_state.clear)
    if user.role not in roles:
        _refuse(f"This page is for the role(s) {', '.join(roles)}; {user.name} has the role {user.role}.")
    return user


def keep_alive() -> None:
    """Count as activity for the idle timeout. A live session's page only reruns its fragments,
    which do not pass `require_role`, so they call this: a teacher watching a class stays signed in."""
    if SIGNED_IN in st.session_state:
        st.session_state[SIGNED_IN]["last_active"] = time.time()


def _local_user(required: bool) -> User:
    if required:
        _refuse("Sign-in is required here (CLASS_MOOD_REQUIRE_AUTH) but no users are configured: add "
                "[auth.users.NAME] tables to .streamlit/secrets.toml or name a users file in CLASS_MOOD_USERS.")
    if _browser_elsewhere():
        _refuse("Sign-in is off because no users are configured, so Class Mood serves only the computer it "
                "runs on. Configure users to use it from elsewhere (README: 'Sign-in, roles and privacy').")
    st.sidebar.caption("sign-in off: no users configured")
    return LOCAL_USER


def _browser_elsewhere() -> bool:
    """Whether the browser is on another computer. st.context gives no address for loopback
    (nor without a client, as under AppTest); an address it cannot parse counts as elsewhere."""
    address = st.context.ip_address
    if not isinstance(address, str):
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return not (ip.is_loopback or getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


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
        name = st.text_input("User name", key="sign-in-name", autocomplete="username")
        password = st.text_input("Password", type="password", key="sign-in-password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            user = sign_in(users, _limiter(), name, password)
        except SignInRefused as exc:
            st.error(str(exc))
        else:
            st.session_state[SIGNED_IN] = {"name": user.name, "password_hash": user.password_hash,
                                           "last_active": time.time()}
            st.rerun()
    st.stop()
