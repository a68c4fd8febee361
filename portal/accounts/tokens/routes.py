"""API token pages: list, create (the token is shown once, on the page that answers the form), revoke."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.models import Membership
from portal.accounts.roles import Permission
from portal.accounts.tokens import service
from portal.accounts.tokens.models import SCOPES
from portal.errors import InvalidInput
from portal.web import actor_of, db, read_form, redirect, render, require_member, settings_of

PAGE = "/settings/tokens"


async def _page(request: Request, member: Membership, *, values: dict[str, Any] | None = None,
                error: InvalidInput | None = None, status: int = 200) -> Response:
    tokens = await service.list_tokens(db(request), actor=actor_of(request), org=member.org)
    return render(request, "tokens/index.html", {
        "tokens": tokens,
        "scopes": SCOPES,
        "max_days": service.MAX_DAYS,
        "values": values or {"name": "", "scopes": [], "days": ""},
        "error": error.message if error else None,
        "field_errors": error.fields if error else {},
    }, status=status)


async def list_tokens(request: Request) -> Response:
    member = require_member(request, Permission.MANAGE_TOKENS)
    return await _page(request, member)


def _days(raw: str) -> int | None:
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"Expiry must be a whole number of days from 1 to {service.MAX_DAYS}, or empty for "
                           "none.", fields={"days": "Not a whole number."}) from None


async def create_token(request: Request) -> Response:
    member = require_member(request, Permission.MANAGE_TOKENS)
    form = await read_form(request)
    name = str(form.get("name") or "")[:400]
    scopes = [str(scope) for scope in form.getlist("scopes")]
    days = str(form.get("days") or "").strip()[:20]
    values: dict[str, Any] = {"name": name, "scopes": scopes, "days": days}
    try:
        token, plaintext = await service.create_token(db(request), actor=actor_of(request), org=member.org,
                                                      name=name, scopes=scopes, days=_days(days))
    except InvalidInput as exc:
        return await _page(request, member, values=values, error=exc, status=400)
    return render(request, "tokens/created.html", {
        "token": token, "plaintext": plaintext, "scopes": SCOPES, "base_url": settings_of(request).base_url,
    }, headers={"Cache-Control": "no-store"})


async def revoke_token(request: Request) -> Response:
    member = require_member(request, Permission.MANAGE_TOKENS)
    await read_form(request)
    token = await service.revoke_token(db(request), actor=actor_of(request), org=member.org,
                                       token_id=request.path_params["token_id"])
    return redirect(request, PAGE, flash=f"The token {token.name!r} is revoked: it no longer works.")


routes: list[BaseRoute] = [
    Route(PAGE, list_tokens, methods=["GET"]),
    Route(PAGE, create_token, methods=["POST"]),
    Route(PAGE + "/{token_id}/revoke", revoke_token, methods=["POST"]),
]
