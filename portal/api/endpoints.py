"""The current token, organisations and their members, as JSON."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.accounts import service as accounts_service
from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import CONTACT_ROLES, Role
from portal.api import service
from portal.api.registry import Caller, api, json_body
from portal.errors import InvalidInput, NotFound
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


CONTACT_ROLES_BODY = {
    "type": "object", "required": ["roles"], "additionalProperties": False,
    "properties": {"roles": {
        "type": "array", "uniqueItems": True,
        "items": {"enum": sorted(role.value for role in CONTACT_ROLES)},
        "description": "The member's contact roles after the call; an empty list makes them neither. Their "
                       "other roles stay as they are (a member left with no role at all becomes `member`)."}},
}


@api.operation("PUT", "/organisations/{org_id}/members/{membership_id}/contact-roles",
               summary="Designate a member as privacy and/or security contact", response=MEMBER,
               request=CONTACT_ROLES_BODY, scope="contacts:write", tag="Organisations",
               description="Contact roles decide who receives sub-processor, AI-commitment and breach notices. "
                           "Only the token's own client organisation; anything else is 404. No other role can "
                           "be changed with a token.")
async def put_contact_roles(request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_body(request, fields=["roles"])
    roles = body.get("roles")
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidInput("`roles` must be a list of role names.", fields={"roles": "A list of role names."})
    session = db(request)
    own = caller.actor.org
    if own is None or str(own.id) != str(request.path_params["org_id"]):
        raise NotFound()
    membership = await accounts_service.set_contact_roles(
        session, actor=caller.actor, org=own, membership_id=request.path_params["membership_id"], roles=roles)
    return member_json(membership)
