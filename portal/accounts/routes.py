"""Logging in and out: password, TOTP step, password reset and accepting an invitation.

The people, client and account-settings pages live in ``people_routes`` and ``account_routes``; all are collected
into ``routes`` at the bottom.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portal.accounts import auth, invitations
from portal.accounts.account_routes import routes as account_routes
from portal.accounts.login_flow import complete_login
from portal.accounts.people_routes import home_page
from portal.accounts.people_routes import routes as people_routes
from portal.accounts.service import user_by_email
from portal.accounts.sessions import SESSION_COOKIE, end_session
from portal.accounts.sso.signin import provider_for_email
from portal.errors import InvalidInput, TooManyRequests
from portal.web import (
    client_ip,
    current_member,
    db,
    form_text,
    keep_changes_on_error,
    read_form,
    redirect,
    render,
    safe_next,
    settings_of,
)


async def login_page(request: Request) -> Response:
    if current_member(request) is not None:
        return redirect(request, safe_next(request.query_params.get("next")))
    return render(request, "accounts/login.html", {
        "email": request.query_params.get("email", ""), "next": safe_next(request.query_params.get("next")),
        "error": None,
    })


async def login_submit(request: Request) -> Response:
    """Email first: an SSO domain goes to its identity provider, anyone else logs in with a password."""
    form = await read_form(request)
    email, password = form_text(form, "email").strip().lower(), form_text(form, "password")
    next_url = safe_next(form_text(form, "next").strip())
    session = db(request)
    provider = await provider_for_email(session, email) if "@" in email else None
    if provider is not None:
        query = urlencode({"next": next_url, "login_hint": email})
        return redirect(request, f"/sso/start/{provider.id}?{query}")
    context = {"email": email, "next": next_url}
    if not email or not password:
        return render(request, "accounts/login.html",
                      {**context, "error": "Enter your email address and your password."}, status=400)
    try:
        user = await auth.authenticate(session, email=email, password=password, ip=client_ip(request),
                                       settings=settings_of(request))
    except (InvalidInput, TooManyRequests) as exc:
        keep_changes_on_error(request)  # the failure must count towards the rate limit
        return render(request, "accounts/login.html", {**context, "error": exc.message}, status=exc.status)
    return await complete_login(request, user=user, org=None, method="password",
                                second_factor_done=not user.has_totp, next_url=next_url)


async def totp_page(request: Request) -> Response:
    if getattr(request.state, "pending_login", None) is None:
        return redirect(request, "/login")
    return render(request, "accounts/totp.html", {"next": safe_next(request.query_params.get("next")),
                                                  "error": None})


async def totp_submit(request: Request) -> Response:
    form = await read_form(request)
    pending = getattr(request.state, "pending_login", None)
    if pending is None:
        return redirect(request, "/login", flash="Your login expired. Please log in again.", kind="warning")
    next_url = safe_next(form_text(form, "next").strip())
    try:
        await auth.check_totp(db(request), user=pending.user, code=form_text(form, "code").strip(),
                              settings=settings_of(request), ip=client_ip(request))
    except (InvalidInput, TooManyRequests) as exc:
        keep_changes_on_error(request)
        return render(request, "accounts/totp.html", {"next": next_url, "error": exc.message}, status=exc.status)
    return await complete_login(request, user=pending.user, org=pending.org, method=pending.auth_method,
                                second_factor_done=True, next_url=next_url)


async def logout(request: Request) -> Response:
    await read_form(request)
    login = getattr(request.state, "login", None) or getattr(request.state, "pending_login", None)
    if login is not None:
        await end_session(db(request), login, ip=client_ip(request), reason="logout")
    response = redirect(request, "/login", flash="You are logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def forgot_page(request: Request) -> Response:
    return render(request, "accounts/forgot.html", {"email": "", "error": None})


async def forgot_submit(request: Request) -> Response:
    form = await read_form(request)
    email = form_text(form, "email").strip().lower()
    if "@" not in email:
        return render(request, "accounts/forgot.html", {"email": email, "error": "Enter your email address."},
                      status=400)
    await auth.request_reset(db(request), email=email, mailer=request.app.state.mailer, ip=client_ip(request))
    return redirect(request, "/login", flash=f"If {email} has an account, a reset link is on its way. The link "
                                             "works once, for one hour.")


async def reset_page(request: Request) -> Response:
    token = request.path_params["token"]
    try:
        await auth.reset_for_token(db(request), token)
    except InvalidInput as exc:
        return render(request, "accounts/reset.html", {"token": None, "error": exc.message}, status=400)
    return render(request, "accounts/reset.html", {"token": token, "error": None})


async def reset_submit(request: Request) -> Response:
    form = await read_form(request)
    token = request.path_params["token"]
    try:
        user = await auth.reset_password(db(request), token=token, password=form_text(form, "password"),
                                         password_confirm=form_text(form, "password_confirm"),
                                         ip=client_ip(request))
    except InvalidInput as exc:
        return render(request, "accounts/reset.html", {"token": token, "error": exc.message}, status=400)
    response = redirect(request, f"/login?{urlencode({'email': user.email})}",
                        flash="Your password is changed and every session of your account has ended. Log in "
                              "with the new password.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def invitation_page(request: Request) -> Response:
    token = request.path_params["token"]
    try:
        invitation = await invitations.invitation_for_token(db(request), token)
    except InvalidInput as exc:
        return render(request, "accounts/invitation.html", {"invitation": None, "error": exc.message}, status=400)
    existing = await user_by_email(db(request), invitation.email)
    return render(request, "accounts/invitation.html", {
        "invitation": invitation, "token": token, "existing": existing is not None,
        "name": invitation.name, "error": None,
    })


async def invitation_submit(request: Request) -> Response:
    form = await read_form(request)
    token = request.path_params["token"]
    session = db(request)
    try:
        user, invitation = await invitations.accept(
            session, token=token, name=form_text(form, "name").strip(), password=form_text(form, "password"),
            password_confirm=form_text(form, "password_confirm") if "password_confirm" in form else None,
            ip=client_ip(request),
        )
    except InvalidInput as exc:
        try:
            invitation = await invitations.invitation_for_token(session, token)
        except InvalidInput:
            return render(request, "accounts/invitation.html", {"invitation": None, "error": exc.message},
                          status=400)
        return render(request, "accounts/invitation.html", {
            "invitation": invitation, "token": token, "existing": "password_confirm" not in form,
            "name": form_text(form, "name").strip(), "error": exc.message,
        }, status=400)
    message = f"Welcome to {invitation.org.name}. Log in to continue."
    if invitation.org.sso_enforced:
        message = f"Welcome to {invitation.org.name}. Log in with your work email through single sign-on."
    return redirect(request, f"/login?{urlencode({'email': user.email})}", flash=message)


def _get_post(path: str, get: Any, post: Any) -> list[Route]:
    return [Route(path, get, methods=["GET"]), Route(path, post, methods=["POST"])]


routes = [
    Route("/", home_page, methods=["GET"]),
    *_get_post("/login", login_page, login_submit),
    *_get_post("/login/totp", totp_page, totp_submit),
    Route("/logout", logout, methods=["POST"]),
    *_get_post("/password/forgot", forgot_page, forgot_submit),
    *_get_post("/password/reset/{token}", reset_page, reset_submit),
    *_get_post("/invitations/{token}", invitation_page, invitation_submit),
    *people_routes,
    *account_routes,
]
