"""``PortalError`` and its subclasses carry the HTTP status; the handlers render them as HTML or JSON.

JSON errors have one shape everywhere: ``{"error": {"code": "...", "message": "...", "fields": {...}}}``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("portal")


class PortalError(Exception):
    status = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, fields: dict[str, str] | None = None) -> None:
        self.message = message or self.default_message
        self.fields = fields or {}
        super().__init__(self.message)


class InvalidInput(PortalError):
    status = 400
    code = "invalid_input"
    default_message = "Please correct the highlighted fields."


class NotAuthenticated(PortalError):
    status = 401
    code = "not_authenticated"
    default_message = "Please log in."


class SecondFactorSetupRequired(PortalError):
    status = 403
    code = "second_factor_required"
    default_message = "Set up a second factor (TOTP) before using the portal."


class Forbidden(PortalError):
    status = 403
    code = "forbidden"
    default_message = "You do not have permission to do this."


class CSRFFailure(Forbidden):
    code = "csrf_failed"
    default_message = "The form expired or came from another site. Go back, reload the page and try again."


class NotFound(PortalError):
    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(PortalError):
    status = 409
    code = "conflict"
    default_message = "This conflicts with the current state."


class TooManyRequests(PortalError):
    status = 429
    code = "rate_limited"
    default_message = "Too many attempts. Wait a few minutes and try again."


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path.endswith(".json")


def json_error(status: int, code: str, message: str, fields: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSONResponse({"error": body}, status_code=status)


async def portal_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PortalError)
    if wants_json(request):
        return json_error(exc.status, exc.code, exc.message, exc.fields)
    from portal.web import redirect, render  # web imports errors; import late to keep the graph acyclic

    if isinstance(exc, NotAuthenticated):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect(request, "/login?" + urlencode({"next": target}))
    if isinstance(exc, SecondFactorSetupRequired):
        return redirect(request, "/account/totp", flash=exc.message, kind="warning")

    return render(request, "errors/error.html", {"status": exc.status, "message": exc.message}, status=exc.status)


_HTTP_MESSAGES = {404: "Not found.", 405: "This method is not allowed here.", 413: "The upload is too large."}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = _HTTP_MESSAGES.get(exc.status_code, str(exc.detail))
    if wants_json(request):
        return json_error(exc.status_code, "http_error", message)
    from portal.web import render

    return render(request, "errors/error.html", {"status": exc.status_code, "message": message},
                  status=exc.status_code, headers=exc.headers)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    message = "Something went wrong on our side. Nothing was changed; please try again."
    if wants_json(request):
        return json_error(500, "server_error", message)
    from portal.web import render

    return render(request, "errors/error.html", {"status": 500, "message": message}, status=500)
