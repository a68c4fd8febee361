"""Webhook endpoints in the JSON API (scope ``webhooks:write``), and the documented shape of every webhook event.

Create and rotate return the signing secret once; no other answer contains it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.api.registry import Caller, api, json_body
from portal.errors import InvalidInput
from portal.notifications import webhook_service as service
from portal.notifications.catalog import SPECS, Topic, payload_schema
from portal.notifications.models import WebhookEndpoint
from portal.notifications.webhook_service import WRITE_SCOPE, EndpointInput
from portal.web import db, settings_of

TAG = "Webhooks"

_ENDPOINT_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string", "format": "uuid"},
    "url": {"type": "string", "format": "uri"},
    "description": {"type": "string"},
    "topics": {"type": "array", "items": {"type": "string", "enum": [t.value for t in Topic]}},
    "enabled": {"type": "boolean"},
    "disabled_at": {"type": ["string", "null"], "format": "date-time"},
    "disabled_reason": {"type": "string", "description": "Why it was disabled, e.g. the receiver answered 410."},
    "created_at": {"type": "string", "format": "date-time"},
    "previous_secret_valid_until": {
        "type": ["string", "null"], "format": "date-time",
        "description": "After a rotation, the previous secret also signs every request until this time."},
}

ENDPOINT = api.schema("WebhookEndpoint", {
    "type": "object",
    "required": list(_ENDPOINT_PROPERTIES),
    "additionalProperties": False,
    "properties": _ENDPOINT_PROPERTIES,
})

ENDPOINT_WITH_SECRET = api.schema("WebhookEndpointWithSecret", {
    "type": "object",
    "required": [*_ENDPOINT_PROPERTIES, "secret"],
    "additionalProperties": False,
    "properties": {**_ENDPOINT_PROPERTIES, "secret": {
        "type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]+$",
        "description": "The signing secret (Standard Webhooks `whsec_...`). Returned only in this answer."}},
})

ENDPOINT_INPUT = api.schema("WebhookEndpointInput", {
    "type": "object",
    "required": ["url", "topics"],
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string", "format": "uri", "maxLength": 2000,
                "description": "http(s) URL on a public address."},
        "description": {"type": "string", "maxLength": 200},
        "topics": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": [t.value for t in Topic]}},
    },
})

# Every event the portal sends, as the body of the POST: the Standard Webhooks envelope around a notice's payload.
for _spec in SPECS.values():
    api.schema(f"WebhookEvent_{_spec.type.value}", {
        "type": "object",
        "description": f"Webhook body of a {_spec.type.value} notice (topic `{_spec.topic.value}`). Headers: "
                       "`webhook-id` (the same on every retry), `webhook-timestamp`, `webhook-signature`.",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"const": _spec.event},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": payload_schema(_spec.type),
        },
    })


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def endpoint_json(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"id": str(endpoint.id), "url": endpoint.url, "description": endpoint.description,
            "topics": list(endpoint.topics), "enabled": endpoint.enabled, "disabled_at": _time(endpoint.disabled_at),
            "disabled_reason": endpoint.disabled_reason, "created_at": _time(endpoint.created_at),
            "previous_secret_valid_until": _time(endpoint.previous_secret_until)}


_INPUT_FIELDS = ("url", "description", "topics")


def _input(body: dict[str, Any]) -> EndpointInput:
    url, description, topics = body.get("url"), body.get("description", ""), body.get("topics")
    if not isinstance(url, str):
        raise InvalidInput("`url` must be a string.", fields={"url": "Must be a string."})
    if not isinstance(description, str):
        raise InvalidInput("`description` must be a string.", fields={"description": "Must be a string."})
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise InvalidInput("`topics` must be a list of topic names.", fields={"topics": "Must be a list of strings."})
    return EndpointInput(url=url, description=description, topics=topics)


@api.operation("GET", "/organisations/{org_id}/webhooks", summary="The organisation's webhook endpoints",
               response={"type": "object", "required": ["items"], "additionalProperties": False,
                         "properties": {"items": {"type": "array", "items": ENDPOINT}}},
               scope=WRITE_SCOPE, tag=TAG,
               description="A vendor token lists a client's endpoints too; secrets are never listed.")
async def list_webhook_endpoints(request: Request, caller: Caller) -> dict[str, Any]:
    _org, endpoints = await service.list_endpoints(db(request), actor=caller.actor,
                                                   org_id=request.path_params["org_id"])
    return {"items": [endpoint_json(e) for e in endpoints]}


@api.operation("POST", "/organisations/{org_id}/webhooks", summary="Add a webhook endpoint",
               response=ENDPOINT_WITH_SECRET, request=ENDPOINT_INPUT, scope=WRITE_SCOPE, status=201, tag=TAG,
               description="Only a token of the organisation itself; the answer holds the signing secret, once.")
async def create_webhook_endpoint(request: Request, caller: Caller) -> dict[str, Any]:
    # Who may act is settled before the body is read: another tenant gets 404 whatever it sends.
    org = await service.manageable_org(db(request), actor=caller.actor, org_id=request.path_params["org_id"])
    data = _input(await json_body(request, fields=_INPUT_FIELDS))
    endpoint, secret = await service.create_endpoint(db(request), actor=caller.actor, org_id=org.id,
                                                     settings=settings_of(request), data=data)
    return {**endpoint_json(endpoint), "secret": secret}


@api.operation("DELETE", "/organisations/{org_id}/webhooks/{endpoint_id}", summary="Delete a webhook endpoint",
               response={}, scope=WRITE_SCOPE, status=204, tag=TAG,
               description="What is still queued for it is cancelled; past deliveries stay as evidence.")
async def delete_webhook_endpoint(request: Request, caller: Caller) -> None:
    await service.delete_endpoint(db(request), actor=caller.actor, org_id=request.path_params["org_id"],
                                  endpoint_id=request.path_params["endpoint_id"])


@api.operation("POST", "/organisations/{org_id}/webhooks/{endpoint_id}/rotate",
               summary="Give a webhook endpoint a new signing secret", response=ENDPOINT_WITH_SECRET,
               scope=WRITE_SCOPE, tag=TAG,
               description="The previous secret keeps signing (a second signature) for 24 hours.")
async def rotate_webhook_secret(request: Request, caller: Caller) -> dict[str, Any]:
    endpoint, secret = await service.rotate_secret(db(request), actor=caller.actor,
                                                   org_id=request.path_params["org_id"],
                                                   endpoint_id=request.path_params["endpoint_id"],
                                                   settings=settings_of(request))
    return {**endpoint_json(endpoint), "secret": secret}
