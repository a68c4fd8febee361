"""Server-side login sessions and the middleware that puts the current member on the request.

Invariants:
- the cookie holds a random token; the table holds its SHA-256, so a database dump cannot be replayed as a login;
- every login gets a new token (no fixation); logging out ends the row, so the token stops working at once;
- a session ends at its absolute expiry, after the idle limit, or when the user is disabled;
- a session waiting for its second factor grants nothing but the TOTP step.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from portal import audit
from portal.accounts.models import LoginSession, Organisation, User
from portal.accounts.service import membership_of, memberships_of_user, vendor_org
from portal.actors import Actor
from portal.db import utcnow
from portal.security import hash_token, new_token
from portal.settings import Settings

SESSION_COOKIE = "portal_session"
# last_seen_at is refreshed at most this often, so reading pages does not write on every request.
_TOUCH_EVERY = dt.timedelta(seconds=60)


async def start_session(session: AsyncSession, *, user: User, org: Organisation, method: str, ip: str,
                        user_agent: str, settings: Settings, second_factor_done: bool) -> tuple[str, LoginSession]:
    """Create a session row and return the token for the cookie (shown to nobody else, stored hashed)."""
    token = new_token()
    now = utcnow()
    login = LoginSession(
        id=hash_token(token), user_id=user.id, org_id=org.id, auth_method=method,
        second_factor_done=second_factor_done, created_at=now, last_seen_at=now,
        expires_at=now + dt.timedelta(hours=settings.session_hours), ip=ip, user_agent=user_agent[:300],
    )
    session.add(login)
    await session.flush()
    return token, login


async def load_session(session: AsyncSession, token: str, settings: Settings) -> LoginSession | None:
    """The live session for ``token``, or None when it is unknown, ended, expired or idle too long."""
    now = utcnow()
    session_id = hash_token(token)
    # Write first: on SQLite a transaction that reads and then writes can be refused its write lock.
    await session.execute(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.ended_at.is_(None),
               LoginSession.last_seen_at < now - _TOUCH_EVERY,
               LoginSession.last_seen_at > now - dt.timedelta(minutes=settings.session_idle_minutes))
        .values(last_seen_at=now)
    )
    login = (await session.execute(
        select(LoginSession).where(LoginSession.id == session_id)
        .options(joinedload(LoginSession.user), joinedload(LoginSession.org))
    )).scalar_one_or_none()
    if login is None or login.ended_at is not None:
        return None
    idle_limit = login.last_seen_at + dt.timedelta(minutes=settings.session_idle_minutes)
    if login.expires_at <= now or idle_limit <= now or login.user.disabled_at is not None:
        return None
    return login


async def end_session(session: AsyncSession, login: LoginSession, *, ip: str, reason: str) -> None:
    """End one session (logout, ended from the account page, or replaced by a new login) and audit it."""
    login.ended_at = utcnow()
    await session.flush()
    actor = Actor(label=f"user:{login.user.email}", user=login.user, org=login.org, ip=ip)
    await audit.record(session, actor=actor, tag="user:logged_out", subject=login.user, org_id=login.org_id,
                       data={"reason": reason, "method": login.auth_method})


async def log_out_everywhere(session: AsyncSession, user: User, *, actor: Actor) -> int:
    """End every session of ``user`` (this browser's too) and audit how many ended."""
    count = await end_sessions_of(session, user)
    await audit.record(session, actor=actor, tag="user:logged_out_everywhere", subject=user,
                       data={"sessions": count})
    return count


async def end_sessions_of(session: AsyncSession, user: User, *, keep: str | None = None,
                          org: Organisation | None = None) -> int:
    """End every live session of ``user`` (in ``org`` only, when given) except ``keep``; returns how many."""
    statement = update(LoginSession).where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None))
    if org is not None:
        statement = statement.where(LoginSession.org_id == org.id)  # tenancy: a login, not tenant data
    if keep:
        statement = statement.where(LoginSession.id != keep)
    result = await session.execute(statement.values(ended_at=utcnow()))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def live_sessions(session: AsyncSession, user: User) -> list[LoginSession]:
    now = utcnow()
    rows = (await session.execute(
        select(LoginSession).where(LoginSession.user_id == user.id, LoginSession.ended_at.is_(None),
                                   LoginSession.expires_at > now).order_by(LoginSession.last_seen_at.desc())
        .options(joinedload(LoginSession.user), joinedload(LoginSession.org))
    )).scalars().all()
    return list(rows)


class CurrentMemberMiddleware:
    """Loads the session cookie's login and membership into ``request.state`` (after the DB middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/static/", "/api/", "/healthz")):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state.update(login=None, membership=None, all_memberships=[], pending_login=None)
        session: AsyncSession = state["db"]
        settings: Settings = scope["app"].state.settings
        token = Request(scope).cookies.get(SESSION_COOKIE)
        if token:
            login = await load_session(session, token, settings)
            if login is not None and not login.second_factor_done:
                state["pending_login"] = login
            elif login is not None:
                membership = await membership_of(session, org=login.org, user_id=login.user_id)
                if membership is not None:
                    state["login"] = login
                    state["membership"] = membership
                    state["all_memberships"] = await memberships_of_user(session, login.user)
        if not settings.vendor_name:
            vendor = await vendor_org(session)
            state["vendor_name"] = vendor.name if vendor else ""
        await self.app(scope, receive, send)
