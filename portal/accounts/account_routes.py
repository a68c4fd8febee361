"""The member's own account: password, TOTP second factor, active sessions, switching organisation."""

from __future__ import annotations

import base64
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portal.accounts import auth
from portal.accounts.login_flow import complete_login
from portal.accounts.models import LoginSession, Membership, User
from portal.accounts.sessions import SESSION_COOKIE, end_session, live_sessions, log_out_everywhere
from portal.actors import Actor
from portal.errors import InvalidInput, NotAuthenticated, NotFound, TooManyRequests
from portal.security import decrypt_field, encrypt_field
from portal.web import (
    client_ip,
    current_member,
    db,
    form_text,
    keep_changes_on_error,
    read_form,
    redirect,
    render,
    settings_of,
)

# The secret being set up travels in the form, encrypted, so a half-finished setup changes nothing stored.
_SETUP_FIELD = "setup"


def _login(request: Request) -> LoginSession:
    login: LoginSession = request.state.login
    return login


def _member(request: Request) -> Membership:
    """The logged-in member; account pages stay reachable while vendor staff still have to set up TOTP."""
    member = current_member(request)
    if member is None:
        raise NotAuthenticated()
    return member


def _user(request: Request) -> User:
    return _member(request).user


async def _account_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    user = _user(request)
    return render(request, "accounts/account.html", {
        "user": user,
        "sessions": await live_sessions(db(request), user),
        "this_session": _login(request).id,
        "error": error,
    }, status=status)


async def account(request: Request) -> Response:
    return await _account_page(request)


async def password_submit(request: Request) -> Response:
    form = await read_form(request)
    user = _user(request)
    try:
        await auth.change_password(db(request), user=user, current=form_text(form, "current_password"),
                                   password=form_text(form, "password"),
                                   password_confirm=form_text(form, "password_confirm"),
                                   keep_session=_login(request).id, ip=client_ip(request))
    except InvalidInput as exc:
        return await _account_page(request, error=exc.message, status=400)
    return redirect(request, "/account", flash="Password changed. Your other sessions have ended.")


def _qr_data_uri(uri: str) -> str:
    svg = segno.make(uri, error="m").svg_inline(scale=4)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _totp_setup_context(request: Request, user: User, secret: str) -> dict[str, Any]:
    uri = auth.totp_uri(secret, user.email)
    return {"secret": secret, "uri": uri, "qr": _qr_data_uri(uri),
            "setup": encrypt_field(settings_of(request).secret_key, secret)}


async def totp_setup(request: Request) -> Response:
    user = _user(request)
    if user.has_totp:
        return render(request, "accounts/totp_setup.html", {"user": user, "error": None})
    context = _totp_setup_context(request, user, auth.new_totp_secret())
    return render(request, "accounts/totp_setup.html", {"user": user, "error": None, **context})


async def totp_enable(request: Request) -> Response:
    form = await read_form(request)
    user = _user(request)
    settings = settings_of(request)
    try:
        secret = decrypt_field(settings.secret_key, form_text(form, _SETUP_FIELD))
    except ValueError:
        return redirect(request, "/account/totp", flash="The setup expired. Scan the new code.", kind="warning")
    try:
        await auth.enable_totp(db(request), user=user, secret=secret, code=form_text(form, "code"),
                               settings=settings, ip=client_ip(request))
    except InvalidInput as exc:
        context = _totp_setup_context(request, user, secret)
        return render(request, "accounts/totp_setup.html", {"user": user, "error": exc.message, **context},
                      status=400)
    return redirect(request, "/account", flash="Two-step login is on. You will be asked for a code at each login.")


async def totp_disable(request: Request) -> Response:
    form = await read_form(request)
    user = _user(request)
    try:
        await auth.disable_totp(db(request), user=user, code=form_text(form, "code"), settings=settings_of(request),
                                ip=client_ip(request))
    except (InvalidInput, TooManyRequests) as exc:
        keep_changes_on_error(request)
        return await _account_page(request, error=exc.message, status=exc.status)
    return redirect(request, "/account", flash="Two-step login is off.")


async def session_end(request: Request) -> Response:
    await read_form(request)
    user = _user(request)
    target = next((s for s in await live_sessions(db(request), user) if s.id == request.path_params["session_id"]),
                  None)
    if target is None:
        raise NotFound()
    await end_session(db(request), target, ip=client_ip(request), reason="ended from the account page")
    if target.id == _login(request).id:
        response = redirect(request, "/login", flash="You are logged out.")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response
    return redirect(request, "/account", flash="That session has ended.")


async def sessions_end_all(request: Request) -> Response:
    """Log out everywhere, this browser included."""
    await read_form(request)
    member = _member(request)
    count = await log_out_everywhere(db(request), member.user, actor=Actor.for_member(member, ip=client_ip(request)))
    response = redirect(request, "/login", flash=f"Logged out of {count} session(s) everywhere.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def switch_org(request: Request) -> Response:
    """Move this login to another organisation the user belongs to (a new session, like any login)."""
    form = await read_form(request)
    user = _user(request)
    wanted = form_text(form, "org_id")
    target = next((m for m in request.state.all_memberships if str(m.org_id) == wanted), None)
    if target is None:
        raise NotFound()
    return await complete_login(request, user=user, org=target.org, method=_login(request).auth_method,
                                second_factor_done=True, next_url="/")


routes = [
    Route("/account", account, methods=["GET"]),
    Route("/account/password", password_submit, methods=["POST"]),
    Route("/account/totp", totp_setup, methods=["GET"]),
    Route("/account/totp", totp_enable, methods=["POST"]),
    Route("/account/totp/disable", totp_disable, methods=["POST"]),
    Route("/account/sessions/{session_id}/end", session_end, methods=["POST"]),
    Route("/account/sessions/end-all", sessions_end_all, methods=["POST"]),
    Route("/account/switch", switch_org, methods=["POST"]),
]
