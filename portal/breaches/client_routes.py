"""A client's incident pages: the breaches it was notified of, each one's timeline of notices with what changed,
and acknowledging them.

The client's admins and security contacts (``VIEW_INCIDENTS``) and vendor staff read them; others get 404. Only
the client's own notices are ever shown, and nothing of the vendor's internal notes.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.agreements.routes import client_org
from portal.breaches import content, notices
from portal.breaches.models import Nature
from portal.errors import NotFound
from portal.web import actor_of, db, read_form, redirect, render

INCIDENTS = "/orgs/{org_id}/incidents"
INCIDENT = INCIDENTS + "/{incident_id}"


async def index(request: Request) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    found = await notices.client_incidents(db(request), actor=actor, org=org)
    return render(request, "breaches/client_index.html", {"org": org, "incidents": found})


async def incident_page(request: Request) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    incident, sent = await notices.client_incident(db(request), actor=actor, org=org,
                                                   incident_id=request.path_params["incident_id"])
    return render(request, "breaches/client_incident.html", {
        "org": org, "incident": incident, "notices": sent, "receipts": await notices.receipts(db(request), sent),
        "fields": content.FIELDS, "art34": content.ART34_DRAFT, "label_of": content.label_of,
        "natures": {n.value: n.label for n in Nature}, "timedelta72": dt.timedelta(hours=72),
        "can_acknowledge": actor.org is not None and actor.org.id == org.id})


async def acknowledge(request: Request) -> Response:
    await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    incident, sent = await notices.client_incident(db(request), actor=actor, org=org,
                                                   incident_id=request.path_params["incident_id"])
    notice_id = request.path_params["notice_id"]
    if notice_id not in {str(n.id) for n in sent}:
        raise NotFound()
    notice = await notices.acknowledge_notice(db(request), actor=actor, org=org, notice_id=notice_id)
    return redirect(request, f"/orgs/{org.id}/incidents/{incident.id}",
                    flash=f"Notice {notice.seq} is acknowledged for {org.name}.")


routes: list[BaseRoute] = [
    Route(INCIDENTS, index, methods=["GET"]),
    Route(INCIDENT, incident_page, methods=["GET"]),
    Route(INCIDENT + "/notices/{notice_id}/acknowledge", acknowledge, methods=["POST"]),
]
