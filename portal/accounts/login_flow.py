"""The end of every successful login (password, TOTP step or single sign-on): a fresh session and its cookie."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse

from portal import audit
from portal.accounts.models import Organisation, User
from portal.accounts.service import memberships_of_user
from portal.accounts.sessions import SESSION_COOKIE, end_session, start_session
from portal.actors import Actor
from portal.errors import InvalidInput
from portal.web import client_ip, db, redirect, safe_next, settings_of


async def default_org(request: Request, user: User) -> Organisation:
    """The organisation a login lands in: the vendor for vendor staff, else the first by name."""
    memberships = await memberships_of_user(db(request), user)
    if not memberships:
        raise InvalidInput("Your account does not belong to any organisation any more. Ask your administrator "
                           "for a new invitation.")
    return memberships[0].org


def set_session_cookie(request: Request, response: RedirectResponse, token: str) -> None:
    settings = settings_of(request)
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.session_hours * 3600, httponly=True,
                        samesite="lax", secure=settings.https, path="/")


async def complete_login(request: Request, *, user: User, org: Organisation | None, method: str,
                         second_factor_done: bool, next_url: str | None = None) -> RedirectResponse:
    """End any session the browser had, start a new one (new id: no fixation) and redirect onwards.

    Without ``second_factor_done`` (password login of a TOTP user) the session only opens the TOTP step.
    """
    session = db(request)
    previous = getattr(request.state, "login", None) or getattr(request.state, "pending_login", None)
    if previous is not None:
        await end_session(session, previous, ip=client_ip(request), reason="replaced by a new login")
    org = org or await default_org(request, user)
    token, _login = await start_session(
        session, user=user, org=org, method=method, ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""), settings=settings_of(request),
        second_factor_done=second_factor_done,
    )
    if second_factor_done:
        await audit.record(session, actor=Actor(label=f"user:{user.email}", user=user, org=org,
                                                ip=client_ip(request)),
                           tag="user:logged_in", subject=user, org_id=org.id, data={"method": method})
        target = safe_next(next_url)
    else:
        target = "/login/totp" + (f"?next={safe_next(next_url)}" if next_url else "")
    response = redirect(request, target)
    set_session_cookie(request, response, token)
    return response
