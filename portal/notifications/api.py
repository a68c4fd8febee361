"""Notices in the API: who receives what, the organisation's notices with each recipient's state, acknowledging.

A client token reads and acknowledges only its own organisation's notices and deliveries; a vendor token reads
every notice and every client's recipients, but acknowledges nothing (only recipients acknowledge).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.accounts import service as accounts_service
from portal.accounts.models import Membership
from portal.accounts.roles import Role
from portal.api import service as api_service
from portal.api.registry import Caller, api, json_body
from portal.errors import InvalidInput, NotFound
from portal.notifications import evidence, subscriptions
from portal.notifications.catalog import NoticeType, Topic
from portal.notifications.models import Channel, Delivery, DeliveryStatus, Notice
from portal.web import db

_UUID = {"type": "string", "format": "uuid"}
_OPT_UUID = {"type": ["string", "null"], "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_TEXT = {"type": "string"}

DELIVERY = api.schema("Delivery", {
    "type": "object",
    "description": "One recipient of one notice on one channel, with what happened to it.",
    "required": ["id", "notice_id", "channel", "email", "endpoint_id", "reason", "status", "attempts",
                 "created_at", "sent_at", "acknowledged_at", "acknowledged_by", "dead_at", "last_error"],
    "additionalProperties": False,
    "properties": {
        "id": _UUID,
        "notice_id": _UUID,
        "channel": {"enum": [c.value for c in Channel]},
        "email": {"type": ["string", "null"], "description": "The address, for email deliveries."},
        "endpoint_id": {**_OPT_UUID, "description": "The webhook endpoint, for webhook deliveries."},
        "reason": {"type": "string", "description": "Why this recipient receives the notice."},
        "status": {"enum": [s.value for s in DeliveryStatus]},
        "attempts": {"type": "integer", "minimum": 0},
        "created_at": _TIME,
        "sent_at": _OPT_TIME,
        "acknowledged_at": _OPT_TIME,
        "acknowledged_by": {"type": "string", "description": "`link`, or `api:<token name>`; empty until then."},
        "dead_at": _OPT_TIME,
        "last_error": _TEXT,
    },
})

NOTICE = api.schema("Notice", {
    "type": "object",
    "required": ["id", "type", "topic", "title", "organisation_id", "created_at", "deliveries"],
    "additionalProperties": False,
    "properties": {
        "id": _UUID,
        "type": {"enum": [t.value for t in NoticeType]},
        "topic": {"enum": [t.value for t in Topic]},
        "title": _TEXT,
        "organisation_id": {**_OPT_UUID, "description": "null for notices to public subscribers."},
        "created_at": _TIME,
        "deliveries": {"type": "array", "items": DELIVERY},
    },
})

RECIPIENT = {
    "type": "object",
    "required": ["channel", "name", "email", "endpoint_id", "reason"],
    "additionalProperties": False,
    "properties": {
        "channel": {"enum": [c.value for c in Channel]},
        "name": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "endpoint_id": _OPT_UUID,
        "reason": _TEXT,
    },
}

NOTICE_RECIPIENTS = api.schema("NoticeRecipients", {
    "type": "object",
    "description": "Who in the organisation would receive the next notice of each type, and why.",
    "required": ["organisation_id", "missing_contacts", "items"],
    "additionalProperties": False,
    "properties": {
        "organisation_id": _UUID,
        "missing_contacts": {"type": "array", "items": {
            "type": "object", "required": ["role", "needed_for"], "additionalProperties": False,
            "properties": {"role": {"enum": [r.value for r in Role]}, "needed_for": _TEXT}}},
        "items": {"type": "array", "items": {
            "type": "object", "required": ["type", "topic", "event", "roles", "recipients"],
            "additionalProperties": False,
            "properties": {
                "type": {"enum": [t.value for t in NoticeType]},
                "topic": {"enum": [t.value for t in Topic]},
                "event": {"type": "string", "description": "The webhook `type` of this notice."},
                "roles": {"type": "array", "items": {"enum": [r.value for r in Role]}},
                "recipients": {"type": "array", "items": RECIPIENT},
            }}},
    },
})

NOTICE_LIST = {"type": "object", "required": ["items", "next_before"], "additionalProperties": False,
               "properties": {"items": {"type": "array", "items": NOTICE},
                              "next_before": {**_OPT_UUID, "description": "Pass as `before` for the next page."}}}


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {"id": str(delivery.id), "notice_id": str(delivery.notice_id), "channel": delivery.channel.value,
            "email": delivery.email, "endpoint_id": str(delivery.endpoint_id) if delivery.endpoint_id else None,
            "reason": delivery.reason, "status": delivery.status.value, "attempts": delivery.attempts,
            "created_at": _time(delivery.created_at), "sent_at": _time(delivery.sent_at),
            "acknowledged_at": _time(delivery.acknowledged_at), "acknowledged_by": delivery.acknowledged_by,
            "dead_at": _time(delivery.dead_at), "last_error": delivery.last_error}


def notice_json(notice: Notice, deliveries: list[Delivery]) -> dict[str, Any]:
    return {"id": str(notice.id), "type": notice.type, "topic": notice.topic, "title": notice.title,
            "organisation_id": str(notice.org_id) if notice.org_id else None,
            "created_at": _time(notice.created_at), "deliveries": [delivery_json(d) for d in deliveries]}


@api.get("/organisations/{org_id}/notice-recipients", summary="Who receives each type of notice",
         response=NOTICE_RECIPIENTS, scope="notices:read", tag="Notices",
         description="Members by role and by their own subscriptions, and webhook endpoints, per notice type; "
                     "`missing_contacts` names designated contacts the organisation lacks. 404 for an "
                     "organisation the token may not read.")
async def get_notice_recipients(request: Request, caller: Caller) -> dict[str, Any]:
    session = db(request)
    org = await api_service.client_organisation(session, actor=caller.actor, org_id=request.path_params["org_id"])
    items = []
    for topic in await subscriptions.recipients_by_topic(session, org=org):
        for entry in topic.types:
            recipients = [{"channel": "email", "name": name or None, "email": address, "endpoint_id": None,
                           "reason": reason} for name, address, reason in entry.people]
            recipients += [{"channel": "webhook", "name": None, "email": None,
                            "endpoint_id": str(hook.endpoint_id), "reason": hook.reason} for hook in entry.webhooks]
            items.append({"type": entry.spec.type.value, "topic": topic.topic.value, "event": entry.spec.event,
                          "roles": sorted(r.value for r in entry.spec.roles), "recipients": recipients})
    missing = await subscriptions.missing_contacts(session, org=org)
    return {"organisation_id": str(org.id), "items": items,
            "missing_contacts": [{"role": m.role.value, "needed_for": m.needed_for} for m in missing]}


@api.get("/notices", summary="Notices with each recipient's delivery state", response=NOTICE_LIST,
         scope="notices:read", tag="Notices",
         description="Newest first, 50 a page. A client token lists its organisation's notices; a vendor token "
                     "lists every notice (public ones included). Query parameters: `type` (a notice type), "
                     "`status` (notices with a delivery in that state), `before` (the `next_before` of the "
                     "previous page) and, for vendor tokens, `organisation_id`.")
async def list_notices(request: Request, caller: Caller) -> dict[str, Any]:
    session = db(request)
    own = caller.actor.org
    if own is None:
        raise NotFound()
    params = {"type": request.query_params.get("type", ""), "status": request.query_params.get("status", ""),
              "before": request.query_params.get("before", ""),
              "org": request.query_params.get("organisation_id", "") if own.is_vendor else ""}
    filters = evidence.parse_notice_filters(params)
    page = await evidence.notices_page(session, actor=caller.actor, org=None if own.is_vendor else own,
                                       filters=filters)
    notices = [row.notice for row in page.rows]
    deliveries = await evidence.deliveries_of(session, notices)
    return {"items": [notice_json(n, deliveries[n.id]) for n in notices],
            "next_before": str(page.older) if page.older else None}


@api.operation("POST", "/deliveries/{delivery_id}/acknowledge", summary="Acknowledge receipt of a notice",
               response=DELIVERY, scope="notices:write", tag="Notices",
               description="Records that the organisation received the notice (once; repeating it changes "
                           "nothing). Only the token's own organisation's deliveries: anything else is 404.")
async def acknowledge_delivery(request: Request, caller: Caller) -> dict[str, Any]:
    session = db(request)
    own = caller.actor.org
    if own is None or own.is_vendor:
        raise NotFound()
    delivery = await evidence.delivery_of(session, org=own, delivery_id=request.path_params["delivery_id"])
    await evidence.acknowledge(session, actor=caller.actor, delivery=delivery, by=f"api:{caller.token.name}")
    return delivery_json(delivery)


_TOPICS = {"type": "array", "uniqueItems": True, "items": {"enum": [t.value for t in Topic]}}
MY_TOPICS = api.schema("Subscriptions", {
    "type": "object",
    "description": "The topics the token's creator receives in the token's organisation beyond their roles.",
    "required": ["organisation_id", "topics"],
    "additionalProperties": False,
    "properties": {"organisation_id": _UUID, "topics": _TOPICS},
})
MY_TOPICS_INPUT = {"type": "object", "required": ["topics"], "additionalProperties": False,
                   "properties": {"topics": _TOPICS}}


async def _creator_membership(request: Request, caller: Caller) -> Membership:
    """The membership of the person who created the token, in the token's organisation; 404 once they left."""
    own = caller.actor.org
    if own is None or caller.actor.on_behalf_of is None:
        raise NotFound("The token has no creator in this organisation (tokens made on the command line have none).")
    membership = await accounts_service.membership_of(db(request), org=own, user_id=caller.actor.on_behalf_of)
    if membership is None:
        raise NotFound("The person who created this token is no longer a member of the organisation.")
    return membership


@api.get("/me/subscriptions", summary="The notice topics of the token's creator", response=MY_TOPICS,
         scope="notices:read", tag="Notices",
         description="Subscriptions are personal: a token reads those of the person who created it.")
async def get_my_subscriptions(request: Request, caller: Caller) -> dict[str, Any]:
    membership = await _creator_membership(request, caller)
    return {"organisation_id": str(membership.org_id),
            "topics": await subscriptions.member_topics(db(request), membership=membership)}


@api.operation("PUT", "/me/subscriptions", summary="Choose the notice topics of the token's creator",
               response=MY_TOPICS, request=MY_TOPICS_INPUT, scope="notices:write", tag="Notices",
               description="Replaces the topics the token's creator receives beyond their roles. Designated "
                           "contacts are set with `PUT /organisations/{org_id}/members/{membership_id}/"
                           "contact-roles`.")
async def put_my_subscriptions(request: Request, caller: Caller) -> dict[str, Any]:
    body = await json_body(request, fields=["topics"])
    topics = body.get("topics")
    if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
        raise InvalidInput("`topics` must be a list of topic names.", fields={"topics": "A list of topic names."})
    membership = await _creator_membership(request, caller)
    chosen = await subscriptions.set_member_topics(db(request), actor=caller.actor, membership=membership,
                                                   topics=topics)
    return {"organisation_id": str(membership.org_id), "topics": chosen}
