"""The current token, organisations and their members, as JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.api import service
from portal.api.registry import Caller, api
from portal.web import db

ORGANISATION = api.schema("Organisation", {
    "type": "object",
    "required": ["id", "name", "slug", "kind", "created_at"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "slug": {"type": "string", "description": "Short stable name, used by `portal token create --org`."},
        "kind": {"type": "string", "enum": ["vendor", "client"]},
        "created_at": {"type": "string", "format": "date-time"},
    },
})

MEMBER = api.schema("Member", {
    "type": "object",
    "required": ["id", "name", "email", "roles"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid", "description": "The membership's id."},
        "name": {"type": "string"},
        "email": {"type": "string", "format": "email"},
        "roles": {"type": "array", "items": {"type": "string", "enum": [role.value for role in Role]}},
    },
})

TOKEN = api.schema("Token", {
    "type": "object",
    "required": ["name", "prefix", "scopes", "organisation", "created_at", "expires_at"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "prefix": {"type": "string", "description": "The token's non-secret start, as the portal lists it."},
        "scopes": {"type": "array", "items": {"type": "string"}},
        "organisation": ORGANISATION,
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    },
})


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def organisation_json(org: Organisation) -> dict[str, Any]:
    return {"id": str(org.id), "name": org.name, "slug": org.slug, "kind": str(org.kind),
            "created_at": _time(org.created_at)}


def member_json(membership: Membership) -> dict[str, Any]:
    return {"id": str(membership.id), "name": membership.user.name, "email": membership.user.email,
            "roles": sorted(role.value for role in membership.roles)}


def _items(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["items"], "additionalProperties": False,
            "properties": {"items": {"type": "array", "items": schema}}}


@api.get("/me", summary="The token making the request", response=TOKEN, tag="Tokens",
         description="Any live token may call this; it needs no scope.")
async def get_me(request: Request, caller: Caller) -> dict[str, Any]:
    token = caller.token
    return {"name": token.name, "prefix": token.prefix, "scopes": sorted(token.scopes),
            "organisation": organisation_json(token.org), "created_at": _time(token.created_at),
            "expires_at": _time(token.expires_at)}


@api.get("/organisations", summary="Organisations the token may read", response=_items(ORGANISATION),
         scope="org:read", tag="Organisations",
         description="A vendor token lists every client organisation; a client token lists its own.")
async def list_organisations(request: Request, caller: Caller) -> dict[str, Any]:
    orgs = await service.organisations(db(request), actor=caller.actor)
    return {"items": [organisation_json(org) for org in orgs]}


@api.get("/organisations/{org_id}", summary="One organisation", response=ORGANISATION, scope="org:read",
         tag="Organisations", description="404 for an organisation the token may not read.")
async def get_organisation(request: Request, caller: Caller) -> dict[str, Any]:
    org = await service.organisation(db(request), actor=caller.actor, org_id=request.path_params["org_id"])
    return organisation_json(org)


@api.get("/organisations/{org_id}/members", summary="The organisation's members with their roles",
         response=_items(MEMBER), scope="org:read", tag="Organisations",
         description="404 for an organisation the token may not read.")
async def list_members(request: Request, caller: Caller) -> dict[str, Any]:
    members = await service.organisation_members(db(request), actor=caller.actor,
                                                 org_id=request.path_params["org_id"])
    return {"items": [member_json(m) for m in members]}
