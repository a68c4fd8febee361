"""The request edge: the DB-session middleware, templates, flash messages, forms and request accessors.

Invariants:
- one database session per request; it commits before the response starts when the response is a success or a
  redirect, and rolls back on an error response or an exception, so bad input changes nothing;
- work queued with ``db.after_commit`` (mail) runs only once the transaction committed;
- every state-changing form is read through ``read_form``, which enforces the CSRF token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import FormData, MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal.accounts.models import Membership
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.db import commit_and_run_jobs, write_intent
from portal.errors import CSRFFailure, Forbidden, InvalidInput, NotAuthenticated, SecondFactorSetupRequired
from portal.security import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_token_for, csrf_token_valid, new_token
from portal.settings import Settings

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FLASH_COOKIE = "portal_flash"
MAX_FORM_BYTES = 1_000_000

def _template_dir() -> Path:
    # Installed without the source tree (pip install .), templates ship inside the package.
    packaged = Path(__file__).resolve().parent / "resources" / "templates"
    return TEMPLATE_DIR if TEMPLATE_DIR.is_dir() else packaged


templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_template_dir()),
    autoescape=jinja2.select_autoescape(["html", "xml"], default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _format_time(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


templates.filters["time"] = _format_time


# ---------------------------------------------------------------- accessors

def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def db(request: Request) -> AsyncSession:
    session: AsyncSession = request.state.db
    return session


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def current_member(request: Request) -> Membership | None:
    member: Membership | None = getattr(request.state, "membership", None)
    return member


def require_member(request: Request, permission: Permission | None = None) -> Membership:
    """The logged-in member, or 401 (login page); 403 without ``permission``.

    Vendor owners, legal and security staff without a second factor are sent to set one up first when
    PORTAL_REQUIRE_VENDOR_MFA is on.
    """
    member = current_member(request)
    if member is None:
        raise NotAuthenticated()
    if (settings_of(request).require_vendor_mfa and member.org.is_vendor and member.needs_vendor_mfa
            and not member.user.has_totp):
        raise SecondFactorSetupRequired()
    if permission is not None and not member.can(permission):
        raise Forbidden()
    return member


def actor_of(request: Request) -> Actor:
    return Actor.for_member(require_member(request), ip=client_ip(request))


def keep_changes_on_error(request: Request) -> None:
    """Commit even though the response is an error (e.g. to keep a failed-login record for the rate limit)."""
    request.state.commit_on_error = True


# ---------------------------------------------------------------- rendering

def vendor_display_name(request: Request) -> str:
    """The vendor's name as pages show it: the setting, else the vendor organisation's name, else a neutral one."""
    return settings_of(request).vendor_name or getattr(request.state, "vendor_name", "") or "DPA portal"


def csrf_token(request: Request) -> str:
    return csrf_token_for(settings_of(request).secret_key, request.state.csrf_cookie)


def render(request: Request, name: str, context: dict[str, Any] | None = None, *, status: int = 200,
           headers: Mapping[str, str] | None = None) -> HTMLResponse:
    state = request.state
    page = {
        "request": request,
        "csrf_token": csrf_token(request) if hasattr(state, "csrf_cookie") else "",
        "current": getattr(state, "membership", None),
        "memberships": getattr(state, "all_memberships", []),
        "flashes": _read_flashes(request),
        "vendor_name": vendor_display_name(request),
        **(context or {}),
    }
    html = templates.get_template(name).render(page)
    response = HTMLResponse(html, status_code=status, headers=headers)
    if request.cookies.get(FLASH_COOKIE):
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


def _flash_serializer(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(settings_of(request).secret_key, salt="flash")


def _read_flashes(request: Request) -> list[tuple[str, str]]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    try:
        return [(str(kind), str(text)) for kind, text in _flash_serializer(request).loads(raw)]
    except (BadSignature, ValueError, TypeError):
        return []


def redirect(request: Request, url: str, *, flash: str | None = None, kind: str = "success") -> RedirectResponse:
    """A 303 redirect (the answer to every successful POST), optionally carrying a one-time message."""
    response = RedirectResponse(url, status_code=303)
    if flash:
        value = _flash_serializer(request).dumps([[kind, flash]])
        response.set_cookie(FLASH_COOKIE, value, httponly=True, samesite="lax", path="/",
                            secure=settings_of(request).https)
    return response


def safe_next(url: str | None, default: str = "/") -> str:
    """Only same-site paths may be used as a post-login destination."""
    if not url or not url.startswith("/") or url.startswith("//") or urlsplit(url).netloc:
        return default
    return url


# ---------------------------------------------------------------- forms

async def read_form(request: Request) -> FormData:
    """The submitted form, after checking its CSRF token (403 and nothing changes when it is missing or wrong)."""
    check_origin(request)
    form = await request.form(max_part_size=MAX_FORM_BYTES)
    submitted = form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not csrf_token_valid(settings_of(request).secret_key, request.cookies.get(CSRF_COOKIE),
                            submitted if isinstance(submitted, str) else None):
        raise CSRFFailure()
    return form


def check_origin(request: Request) -> None:
    """Refuse state changes whose Origin header names another site."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return
    own = {_origin_of(settings_of(request).base_url), _origin_of(str(request.base_url))}
    if origin.rstrip("/") not in own:
        raise CSRFFailure()


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def declared_length(request: Request) -> int:
    """The Content-Length the client declared (0 when absent or malformed: ``capped_request`` still counts)."""
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:
        return 0


def capped_request(request: Request, limit: int, too_large: Callable[[], Exception]) -> Request:
    """``request`` whose body is refused with ``too_large()`` as soon as more than ``limit`` bytes have arrived,
    so an upload that hides its size (chunked) is stopped at the same limit as one that declares it."""
    received = 0

    async def receive() -> Message:
        nonlocal received
        message = await request.receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large()
        return message

    return Request(request.scope, receive)


def form_text(form: FormData, name: str) -> str:
    """A text field as typed, or "" when absent or a file (for passwords and codes, which are not trimmed)."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


def field(form: FormData, name: str, *, required: bool = True, label: str | None = None,
          max_length: int = 200) -> str:
    """A trimmed text field; raises InvalidInput with a message naming the field."""
    value = form.get(name)
    text = value.strip() if isinstance(value, str) else ""
    if required and not text:
        raise InvalidInput(f"{label or name.replace('_', ' ').capitalize()} is required.",
                           fields={name: "Required."})
    if len(text) > max_length:
        raise InvalidInput(f"{label or name} is too long (at most {max_length} characters).",
                           fields={name: "Too long."})
    return text


# ---------------------------------------------------------------- middleware

class DBSessionMiddleware:
    """Opens the request's session and decides commit or rollback when the response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        sessionmaker: async_sessionmaker[AsyncSession] = scope["app"].state.sessionmaker
        state = scope.setdefault("state", {})
        token = write_intent.set(scope["method"] not in SAFE_METHODS)
        try:
            async with sessionmaker() as session:
                state["db"] = session
                finished = False

                async def send_after_deciding(message: Message) -> None:
                    nonlocal finished
                    if message["type"] == "http.response.start" and not finished:
                        finished = True
                        status = message["status"]
                        if status < 400 or state.get("commit_on_error"):
                            await commit_and_run_jobs(session)
                        else:
                            await session.rollback()
                    await send(message)

                try:
                    await self.app(scope, receive, send_after_deciding)
                except BaseException:
                    if not finished:
                        await session.rollback()
                    raise
        finally:
            write_intent.reset(token)


class CSRFCookieMiddleware:
    """Gives every browser a random CSRF cookie; form tokens are derived from it (see ``security``)."""

    def __init__(self, app: ASGIApp, *, secure: bool) -> None:
        self.app = app
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/static/", "/api/")):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        existing = request.cookies.get(CSRF_COOKIE)
        state = scope.setdefault("state", {})
        state["csrf_cookie"] = existing or new_token()

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and not existing:
                response = Response()
                response.set_cookie(CSRF_COOKIE, state["csrf_cookie"], httponly=True, samesite="lax", path="/",
                                    secure=self.secure)
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", response.headers["set-cookie"])
            await send(message)

        await self.app(scope, receive, send_with_cookie)
