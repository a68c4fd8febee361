"""The vendor's incident pages: the register, opening an incident, one incident with each affected client's clock
and notices, choosing affected clients, sending a client its notice, and closing.

Vendor staff read (``VIEW_CLIENTS``); security and owners act (``MANAGE_INCIDENTS``); clients get 404. A refused
form is shown again as typed with the reason beside its field; its 4xx response rolls everything back.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts import service as accounts_service
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.breaches import content, incidents, notices
from portal.breaches.clocks import elapsed_hours
from portal.breaches.models import UNKNOWN, Closure, Incident, Nature, Phase
from portal.breaches.overview import overview
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput, NotFound, PortalError
from portal.subprocessors import registry
from portal.subprocessors.registry_routes import vendor_staff
from portal.web import db, form_text, read_form, redirect, render, settings_of

INCIDENTS = "/incidents"
INCIDENT = INCIDENTS + "/{incident_id}"
INPUT_FIELDS = ("title", "aware_at", "detected_at", "occurred_at", "summary", "source", "subprocessor_name",
                "subprocessor_notified_at", "contact_point", "internal_notes")


def _errors(error: PortalError | None) -> dict[str, Any]:
    return {"error": error.message if error else None, "field_errors": error.fields if error else {}}


async def index(request: Request) -> Response:
    actor = vendor_staff(request)
    found = await incidents.incidents(db(request), actor=actor)
    now = utcnow()
    return render(request, "breaches/index.html", {
        "incidents": found, "hours": {i.id: elapsed_hours(i, now) for i in found},
        "can_manage": actor.can(Permission.MANAGE_INCIDENTS)})


async def new_page(request: Request, *, values: dict[str, Any] | None = None, error: PortalError | None = None,
                   status: int = 200) -> Response:
    actor = vendor_staff(request)
    return render(request, "breaches/new.html", {
        "values": values or {"source": "own", "natures": []}, "natures": list(Nature),
        "sources": incidents.SOURCES, "can_manage": actor.can(Permission.MANAGE_INCIDENTS), **_errors(error)},
        status=status)


def _incident_input(form: FormData) -> dict[str, Any]:
    values: dict[str, Any] = {name: form_text(form, name) for name in INPUT_FIELDS}
    values["natures"] = [v for v in form.getlist("natures") if isinstance(v, str)]
    return values


async def create(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_INCIDENTS)
    values = _incident_input(form)
    try:
        incident = await incidents.open_incident(db(request), actor=actor, data=incidents.IncidentInput(
            **{**values, "natures": tuple(values["natures"])}))
    except InvalidInput as exc:
        return await new_page(request, values=values, error=exc, status=400)
    return redirect(request, f"{INCIDENTS}/{incident.id}", flash=f"{incident.reference} is on the register. Choose "
                                                                 "the affected clients, then notify each of them.")


async def _incident(request: Request) -> Incident:
    return await incidents.incident_of(db(request), actor=vendor_staff(request),
                                       incident_id=request.path_params["incident_id"])


async def incident_page(request: Request, *, error: PortalError | None = None, failed: str = "",
                        typed: dict[str, str] | None = None, status: int = 200) -> Response:
    actor = vendor_staff(request)
    incident = await _incident(request)
    session = db(request)
    now = utcnow()
    rows = await overview(session, actor=actor, incident=incident, settings=settings_of(request), now=now)
    taken = {row.org.id for row in rows}
    candidates = [org for org in await incidents.clients_with_agreements(session) if org.id not in taken]
    in_force = await registry.in_force_on(session, now.date())
    return render(request, "breaches/incident.html", {
        "incident": incident, "rows": rows, "elapsed": elapsed_hours(incident, now), "candidates": candidates,
        "subprocessors": sorted({e["name"] for e in registry.entries_of(in_force)}),
        "closures": list(Closure), "natures": {n.value: n.label for n in Nature}, "sources": incidents.SOURCES,
        "fields": content.FIELDS, "unknown": UNKNOWN, "art34": content.ART34_DRAFT,
        "waiting": [row.org for row in rows if not row.notices],
        "can_manage": actor.can(Permission.MANAGE_INCIDENTS), "failed": failed, "typed": typed or {},
        **_errors(error)}, status=status)


async def add_clients(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_INCIDENTS)
    incident = await _incident(request)
    try:
        selection = incidents.Selection(
            everyone=form_text(form, "everyone") == "yes", subprocessor=form_text(form, "subprocessor"),
            org_ids=tuple(v for v in form.getlist("org_ids") if isinstance(v, str)),
            data_term=form_text(form, "data_term"))
        added = await incidents.add_clients(db(request), actor=actor, incident=incident, selection=selection,
                                            default_notice_days=settings_of(request).subprocessor_notice_days)
    except (InvalidInput, Conflict) as exc:
        return await incident_page(request, error=exc, failed="clients", status=exc.status)
    return redirect(request, f"{INCIDENTS}/{incident.id}", flash=f"{len(added)} client(s) marked as affected.")


async def close(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_INCIDENTS)
    incident = await _incident(request)
    typed = {"closure": form_text(form, "closure"), "closure_rationale": form_text(form, "closure_rationale")}
    try:
        await incidents.close_incident(db(request), actor=actor, incident=incident, closure=typed["closure"],
                                       rationale=typed["closure_rationale"])
    except (InvalidInput, Conflict) as exc:
        return await incident_page(request, error=exc, failed="close", typed=typed, status=exc.status)
    return redirect(request, f"{INCIDENTS}/{incident.id}", flash=f"{incident.reference} is closed and kept on record.")


async def notify_all(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_INCIDENTS)
    incident = await _incident(request)
    names = [*content.NAMES, content.ART34_DRAFT, *(f"{f.name}_unknown" for f in content.FIELDS)]
    typed = {name: form_text(form, name) for name in (*names, "figures")}
    try:
        sent = await notices.notify_all(db(request), actor=actor, incident=incident, raw=typed,
                                        figures_text=typed["figures"], settings=settings_of(request))
    except (InvalidInput, Conflict) as exc:
        return await incident_page(request, error=exc, failed="all", typed=typed, status=exc.status)
    return redirect(request, f"{INCIDENTS}/{incident.id}",
                    flash=f"Initial notices are on their way to {len(sent)} client(s), each with its own figures.")


# ---------------------------------------------------------------- one client's notice

async def _client(request: Request, incident: Incident) -> Organisation:
    """An affected client of ``incident`` named in the path (404 for anything else)."""
    org = await accounts_service.visible_org(db(request), actor=vendor_staff(request),
                                             org_id=request.path_params["org_id"])
    rows = await incidents.affected(db(request), incident)
    if org.is_vendor or org.id not in {row.org_id for row in rows}:
        raise NotFound()
    return org


async def notice_page(request: Request, *, values: dict[str, str] | None = None, error: PortalError | None = None,
                      status: int = 200) -> Response:
    actor = vendor_staff(request)
    incident = await _incident(request)
    org = await _client(request, incident)
    earlier = await notices.notices_to(db(request), org, incident)
    if values is None:
        last = earlier[-1].content if earlier else {}
        values = {name: str(last.get(name, "")) for name in (*content.NAMES, content.ART34_DRAFT)}
        values["contact_point"] = values["contact_point"] or incident.contact_point
        values["phase"] = Phase.INTERIM.value if earlier else Phase.INITIAL.value
    return render(request, "breaches/notice.html", {
        "incident": incident, "org": org, "earlier": earlier, "values": values, "fields": content.FIELDS,
        "phases": list(Phase), "unknown": UNKNOWN, "art34": content.ART34_DRAFT,
        "can_manage": actor.can(Permission.MANAGE_INCIDENTS), **_errors(error)}, status=status)


async def send_notice(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_INCIDENTS)
    incident = await _incident(request)
    org = await _client(request, incident)
    names = [*content.NAMES, content.ART34_DRAFT, "phase", *(f"{f.name}_unknown" for f in content.FIELDS)]
    values = {name: form_text(form, name) for name in names}
    try:
        notice = await notices.send_notice(db(request), actor=actor, incident=incident, org=org,
                                           phase=values["phase"], raw=values, settings=settings_of(request))
    except (InvalidInput, Conflict) as exc:
        return await notice_page(request, values=values, error=exc, status=exc.status)
    return redirect(request, f"{INCIDENTS}/{incident.id}",
                    flash=f"Notice {notice.seq} ({notice.phase.value}) is on its way to the security contacts of "
                          f"{org.name} by email and webhook, and shown in its portal.")


routes: list[BaseRoute] = [
    Route(INCIDENTS, index, methods=["GET"]),
    Route(INCIDENTS, create, methods=["POST"]),
    Route(INCIDENTS + "/new", new_page, methods=["GET"]),
    Route(INCIDENT, incident_page, methods=["GET"]),
    Route(INCIDENT + "/clients", add_clients, methods=["POST"]),
    Route(INCIDENT + "/close", close, methods=["POST"]),
    Route(INCIDENT + "/notify-all", notify_all, methods=["POST"]),
    Route(INCIDENT + "/clients/{org_id}/notice", notice_page, methods=["GET"]),
    Route(INCIDENT + "/clients/{org_id}/notice", send_notice, methods=["POST"]),
]
