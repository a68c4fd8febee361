"""Webhook endpoint pages of a client organisation: list and create, one endpoint with its latest deliveries,
change, rotate the secret (shown once), enable, disable, delete, send a test event."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.errors import InvalidInput
from portal.notifications import webhook_service as service
from portal.notifications.catalog import Topic
from portal.notifications.models import WebhookEndpoint
from portal.notifications.webhook_service import EndpointInput
from portal.web import actor_of, db, form_text, read_form, redirect, render, require_member, settings_of

EMPTY_FORM: dict[str, Any] = {"url": "", "description": "", "topics": []}
NO_STORE = {"Cache-Control": "no-store"}


def _input(form: FormData) -> EndpointInput:
    return EndpointInput(url=form_text(form, "url"), description=form_text(form, "description"),
                         topics=[t for t in form.getlist("topics") if isinstance(t, str)])


def _typed_values(form: FormData) -> dict[str, Any]:
    """What to show again when the form is refused."""
    data = _input(form)
    return {"url": data.url.strip()[:2000], "description": data.description[:300], "topics": data.topics}


def _current_values(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"url": endpoint.url, "description": endpoint.description, "topics": list(endpoint.topics)}


def _base(request: Request) -> str:
    return f"/orgs/{request.path_params['org_id']}/webhooks"


def _errors(error: InvalidInput | None) -> dict[str, Any]:
    return {"error": error.message if error else None, "field_errors": error.fields if error else {}}


async def settings_redirect(request: Request) -> Response:
    member = require_member(request)
    return redirect(request, f"/orgs/{member.org_id}/webhooks")


async def index(request: Request, *, error: InvalidInput | None = None, values: dict[str, Any] | None = None,
                status: int = 200) -> Response:
    page = await service.overview(db(request), actor=actor_of(request), org_id=request.path_params["org_id"])
    return render(request, "webhooks/index.html", {
        "page": page, "topics": list(Topic), "values": values or EMPTY_FORM, **_errors(error),
    }, status=status)


async def create(request: Request) -> Response:
    form = await read_form(request)
    try:
        endpoint, secret = await service.create_endpoint(
            db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
            settings=settings_of(request), data=_input(form))
    except InvalidInput as exc:
        return await index(request, error=exc, values=_typed_values(form), status=400)
    return render(request, "webhooks/secret.html", {"endpoint": endpoint, "secret": secret, "rotated": False},
                  headers=NO_STORE)


async def endpoint_page(request: Request, *, error: InvalidInput | None = None,
                        action_error: InvalidInput | None = None, values: dict[str, Any] | None = None,
                        status: int = 200) -> Response:
    view = await service.endpoint_view(db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
                                       endpoint_id=request.path_params["endpoint_id"])
    return render(request, "webhooks/endpoint.html", {
        "view": view, "topics": list(Topic), "values": values or _current_values(view.endpoint), **_errors(error),
        "action_error": action_error.message if action_error else None,
    }, status=status)


async def update(request: Request) -> Response:
    form = await read_form(request)
    try:
        endpoint = await service.update_endpoint(
            db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
            endpoint_id=request.path_params["endpoint_id"], settings=settings_of(request), data=_input(form))
    except InvalidInput as exc:
        return await endpoint_page(request, error=exc, values=_typed_values(form), status=400)
    return redirect(request, f"{_base(request)}/{endpoint.id}", flash="Endpoint saved.")


async def rotate(request: Request) -> Response:
    await read_form(request)
    endpoint, secret = await service.rotate_secret(
        db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
        endpoint_id=request.path_params["endpoint_id"], settings=settings_of(request))
    return render(request, "webhooks/secret.html", {"endpoint": endpoint, "secret": secret, "rotated": True},
                  headers=NO_STORE)


async def _set_enabled(request: Request, enabled: bool) -> Response:
    await read_form(request)
    endpoint = await service.set_enabled(db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
                                         endpoint_id=request.path_params["endpoint_id"], enabled=enabled)
    message = ("Endpoint enabled: new notices for its topics will be sent to it." if enabled else
               "Endpoint disabled: nothing is sent to it, and what was queued for it is cancelled.")
    return redirect(request, f"{_base(request)}/{endpoint.id}", flash=message)


async def enable(request: Request) -> Response:
    return await _set_enabled(request, True)


async def disable(request: Request) -> Response:
    return await _set_enabled(request, False)


async def delete(request: Request) -> Response:
    await read_form(request)
    endpoint = await service.delete_endpoint(db(request), actor=actor_of(request),
                                             org_id=request.path_params["org_id"],
                                             endpoint_id=request.path_params["endpoint_id"])
    return redirect(request, _base(request), flash=f"Endpoint {endpoint.url} deleted.")


async def send_test(request: Request) -> Response:
    await read_form(request)
    try:
        await service.send_test_event(db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
                                      endpoint_id=request.path_params["endpoint_id"], settings=settings_of(request))
    except InvalidInput as exc:
        return await endpoint_page(request, action_error=exc, status=400)
    return redirect(request, f"{_base(request)}/{request.path_params['endpoint_id']}",
                    flash="Test event queued: it appears under Latest deliveries once it is sent.")


ENDPOINT = "/orgs/{org_id}/webhooks/{endpoint_id}"

routes: list[BaseRoute] = [
    Route("/settings/webhooks", settings_redirect, methods=["GET"]),
    Route("/orgs/{org_id}/webhooks", index, methods=["GET"]),
    Route("/orgs/{org_id}/webhooks", create, methods=["POST"]),
    Route(ENDPOINT, endpoint_page, methods=["GET"]),
    Route(ENDPOINT, update, methods=["POST"]),
    Route(ENDPOINT + "/rotate", rotate, methods=["POST"]),
    Route(ENDPOINT + "/enable", enable, methods=["POST"]),
    Route(ENDPOINT + "/disable", disable, methods=["POST"]),
    Route(ENDPOINT + "/delete", delete, methods=["POST"]),
    Route(ENDPOINT + "/test", send_test, methods=["POST"]),
]
