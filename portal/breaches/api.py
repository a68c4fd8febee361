"""Breach notices in the API: a client's incidents and notices (``incidents:read``), acknowledging them
(``incidents:acknowledge``) and, for vendor tokens, the incident register with each client's clock.

Invariants:
- a client token reads only the incidents its organisation was notified of, with only its own notices and figures
  (legal requirement 47); anything else (another client's incident or notice, the vendor) answers 404;
- internal notes never leave the vendor: no endpoint, not even the vendor's register, returns them;
- each notice carries ``notified_at`` and the 72-hour reference (requirement 45); the register gives the hours since
  awareness and, per affected client, the hours to its first notice against its target (requirement 44);
- only the client's own token acknowledges, once: a repeated call changes nothing and says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.api import service as api_service
from portal.api.registry import Caller, api
from portal.breaches import clocks, incidents, notices, overview
from portal.breaches.content import ART34_DRAFT, NAMES
from portal.breaches.models import BreachNotice, Closure, Incident, IncidentStatus, Nature, Phase
from portal.db import utcnow
from portal.tenancy import get_scoped
from portal.web import db, settings_of

TAG = "Incidents"
READ, ACKNOWLEDGE = "incidents:read", "incidents:acknowledge"
SA_REFERENCE = dt.timedelta(hours=72)

_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}
_HOURS = {"type": "integer", "minimum": 0}
_SEQ = {"type": "integer", "minimum": 1}
_PHASE = {"enum": [p.value for p in Phase]}
_FIELDS = (*NAMES, ART34_DRAFT)


def _object(properties: dict[str, Any], description: str = "", optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "required": [p for p in properties if p not in optional], "additionalProperties": False,
            "properties": properties, **({"description": description} if description else {})}


_CHANGE = _object({"before": {"type": ["string", "null"]}, "after": {"type": ["string", "null"]}})
_NOTICE = {
    "id": _UUID, "incident_id": _UUID, "seq": _SEQ, "phase": _PHASE,
    "content": _object({name: _TEXT for name in _FIELDS}, "The Art. 33(3) content for this client alone; numbers, "
                       "consequences and measures may read 'Not yet known, under investigation'. "
                       f"`{ART34_DRAFT}`, a draft for informing data subjects, only when given.", (ART34_DRAFT,)),
    "changes": {"type": "object", "additionalProperties": False, "properties": {name: _CHANGE for name in _FIELDS},
                "description": "The fields that differ from the previous notice to the client (for the first "
                               "notice every field, `before` null)."},
    "notified_at": _TIME,
    "reference_sa_deadline": {**_TIME, "description": "`notified_at` + 72 hours: a reference for the client's own "
                                                      "notification of the supervisory authority (Art. 33(1))."},
    "acknowledged_at": _OPT_TIME,
    "acknowledged_by": {**_TEXT, "description": "`user:<email>` or `token:<name>`; empty until acknowledged."},
}
NOTICE = api.schema("BreachNotice", _object(_NOTICE, "One notice of an incident to the organisation."))
ACKNOWLEDGED = api.schema("BreachNoticeAcknowledged", _object({**_NOTICE, "already_acknowledged": {
    "type": "boolean", "description": "True: it had been acknowledged before (see `acknowledged_at` and "
                                      "`acknowledged_by`), and this call changed nothing."}}))
_INCIDENT = {"id": _UUID, "reference": _TEXT, "title": _TEXT, "aware_at": _TIME,
             "natures": {"type": "array", "items": {"enum": [n.value for n in Nature]}},
             "status": {"enum": [s.value for s in IncidentStatus]},
             "closure": {"enum": [*(c.value for c in Closure), None]}, "closed_at": _OPT_TIME}
INCIDENT = api.schema("BreachIncident", _object({**_INCIDENT, "notices": {"type": "array", "items": NOTICE}},
                                                "An incident the organisation was notified of, with its notices."))
INCIDENT_LIST = api.schema("BreachIncidentList", _object({"items": {"type": "array", "items": INCIDENT}},
                                                         "Newest awareness first."))
_SENT = _object({"id": _UUID, "seq": _SEQ, "phase": _PHASE, "notified_at": _TIME, "delivered_at": _OPT_TIME,
                 "acknowledged_at": _OPT_TIME}, "A notice to the client: when it was sent, first delivered and "
                                                "first acknowledged (portal, email link or API).")
CLIENT_CLOCK = api.schema("IncidentClientClock", _object({
    "organisation": _object({"id": _UUID, "name": _TEXT}),
    "target_hours": {**_SEQ, "description": "From the client's agreement, else the portal's default."},
    "first_notice_at": _OPT_TIME,
    "hours": {**_HOURS, "description": "From awareness to the first notice; to now while none was sent."},
    "sla_breached": {"type": "boolean", "description": "`hours` went past `target_hours`."},
    "notices": {"type": "array", "items": _SENT},
}, "One affected client of an incident and its clock for the first notice."))
REGISTER_ENTRY = api.schema("RegisterIncident", _object({
    **_INCIDENT, "detected_at": _TIME, "occurred_at": _OPT_TIME, "summary": _TEXT,
    "source": {"enum": ["own", "subprocessor"]}, "subprocessor_name": _TEXT, "subprocessor_notified_at": _OPT_TIME,
    "contact_point": _TEXT, "closure_rationale": _TEXT,
    "elapsed_hours": {**_HOURS, "description": "Whole hours since awareness (to the closing, once closed)."},
    "clients": {"type": "array", "items": CLIENT_CLOCK},
}, "An incident of the register, without its internal notes."))
REGISTER = api.schema("IncidentRegister", _object({"as_of": _TIME, "items": {"type": "array", "items": REGISTER_ENTRY}},
                                                  "Open incidents first, then newest awareness first."))


def _actor(caller: Caller) -> Actor:
    actor, own = caller.actor, caller.actor.org
    granted = set()
    if own is not None and own.is_vendor and READ in actor.scopes:
        granted.add(Permission.VIEW_CLIENTS)
    elif own is not None and not own.is_vendor and actor.scopes & {READ, ACKNOWLEDGE}:
        granted.add(Permission.VIEW_INCIDENTS)
    # The breach services check a member's permission; the scope the registry checked stands for it here.
    return dataclasses.replace(actor, granted=frozenset(granted))


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def notice_json(notice: BreachNotice) -> dict[str, Any]:
    return {"id": str(notice.id), "incident_id": str(notice.incident_id), "seq": notice.seq,
            "phase": notice.phase.value, "content": dict(notice.content), "changes": dict(notice.changes),
            "notified_at": _time(notice.notified_at), "reference_sa_deadline": _time(notice.notified_at + SA_REFERENCE),
            "acknowledged_at": _time(notice.acknowledged_at), "acknowledged_by": notice.acknowledged_by}


def _incident_fields(incident: Incident) -> dict[str, Any]:
    return {"id": str(incident.id), "reference": incident.reference, "title": incident.title,
            "aware_at": _time(incident.aware_at), "natures": list(incident.natures), "status": incident.status.value,
            "closure": incident.closure.value if incident.closure else None, "closed_at": _time(incident.closed_at)}


def incident_json(incident: Incident, sent: list[BreachNotice]) -> dict[str, Any]:
    return {**_incident_fields(incident), "notices": [notice_json(n) for n in sent]}


async def _client(request: Request, caller: Caller, *, own_only: bool = False) -> Organisation:
    """The client organisation in the path: the token's own, or any client's for a vendor token (unless
    ``own_only``); else 404. The vendor is notified of nothing."""
    return await api_service.client_organisation(db(request), actor=caller.actor,
                                                 org_id=request.path_params["org_id"], own_only=own_only)


@api.get("/organisations/{org_id}/incidents", summary="The breach incidents the organisation was notified of",
         response=INCIDENT_LIST, scope=READ, tag=TAG,
         description="Each incident with the organisation's own notices in order: their Art. 33(3) content, what "
                     "changed since the previous one, when it was notified, the 72-hour reference and the "
                     "acknowledgement. Nothing of other clients. A vendor token reads any client; else 404.")
async def list_organisation_incidents(request: Request, caller: Caller) -> dict[str, Any]:
    """Only incidents the organisation has a notice of, each with only its own notices."""
    session, org = db(request), await _client(request, caller)
    found = await notices.client_incidents(session, actor=_actor(caller), org=org)
    return {"items": [incident_json(i, await notices.notices_to(session, org, i)) for i in found]}


@api.get("/organisations/{org_id}/incidents/{incident_id}", summary="One incident the organisation was notified of",
         response=INCIDENT, scope=READ, tag=TAG,
         description="404 unless the organisation was notified of the incident.")
async def get_organisation_incident(request: Request, caller: Caller) -> dict[str, Any]:
    """An incident exists for a client once it was notified of it, and then only with its own notices."""
    org = await _client(request, caller)
    incident, sent = await notices.client_incident(db(request), actor=_actor(caller), org=org,
                                                   incident_id=request.path_params["incident_id"])
    return incident_json(incident, sent)


@api.operation("POST", "/organisations/{org_id}/breach-notices/{notice_id}/acknowledge",
               summary="Acknowledge receipt of a breach notice", response=ACKNOWLEDGED, scope=ACKNOWLEDGE, tag=TAG,
               description="Records, once, that the organisation received the notice (the first acknowledgement "
                           "counts; repeating it changes nothing and answers `already_acknowledged: true`). Only "
                           "the token's own organisation's notices; anything else is 404.")
async def acknowledge_breach_notice(request: Request, caller: Caller) -> dict[str, Any]:
    """Only the client's own token acknowledges its own notice; the first acknowledgement is the one on record."""
    # Vendor tokens read notices but only the client acknowledges them.
    session, org = db(request), await _client(request, caller, own_only=True)
    before = await get_scoped(session, BreachNotice, request.path_params["notice_id"], org)
    already = before.acknowledged_at is not None
    notice = await notices.acknowledge_notice(session, actor=_actor(caller), org=org, notice_id=str(before.id))
    return {**notice_json(notice), "already_acknowledged": already}


@api.get("/incidents", summary="The incident register with each affected client's clock", response=REGISTER,
         scope=READ, tag=TAG,
         description="Vendor tokens only (a client token gets 404). Every incident with the hours since awareness "
                     "and, per affected client, its target, first notice and whether the target was missed. "
                     "Internal notes are never in the API.")
async def list_incident_register(request: Request, caller: Caller) -> dict[str, Any]:
    """The vendor's register, without internal notes; clocks run to now (to closing for closed incidents)."""
    session, actor, now = db(request), _actor(caller), utcnow()
    items = []
    for incident in await incidents.incidents(session, actor=actor):
        rows = await overview.overview(session, actor=actor, incident=incident, settings=settings_of(request), now=now)
        clients = [{"organisation": {"id": str(row.org.id), "name": row.org.name},
                    "target_hours": row.clock.target_hours, "first_notice_at": _time(row.clock.first_notice_at),
                    "hours": row.clock.hours, "sla_breached": row.clock.sla_breached,
                    "notices": [{"id": str(n.id), "seq": n.seq, "phase": n.phase.value,
                                 "notified_at": _time(n.notified_at),
                                 "delivered_at": _time(row.receipts[n.id].delivered_at),
                                 "acknowledged_at": _time(row.receipts[n.id].acknowledged_at)}
                                for n in row.notices]} for row in rows]
        items.append({**_incident_fields(incident), "detected_at": _time(incident.detected_at),
                      "occurred_at": _time(incident.occurred_at), "summary": incident.summary,
                      "source": incident.source, "subprocessor_name": incident.subprocessor_name,
                      "subprocessor_notified_at": _time(incident.subprocessor_notified_at),
                      "contact_point": incident.contact_point, "closure_rationale": incident.closure_rationale,
                      "elapsed_hours": clocks.elapsed_hours(incident, now), "clients": clients})
    return {"as_of": _time(now), "items": items}
