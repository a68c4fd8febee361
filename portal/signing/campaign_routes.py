"""The vendor's agreements board (every client's agreement in force and where it stands with the newest template
version) and the redline a client reads before signing a new version.

The board is for vendor staff (``VIEW_CLIENTS``; clients get 404); the redline for the agreement's client and the
vendor's staff, like the agreement itself.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.agreements.routes import client_org
from portal.signing import access, campaign
from portal.signing.routes import AGREEMENT
from portal.web import actor_of, db, render, settings_of

STATE_LABELS = {
    campaign.CampaignState.SIGNED: "Signed",
    campaign.CampaignState.VIEWED: "Viewed, not signed",
    campaign.CampaignState.PENDING: "Pending",
    campaign.CampaignState.DECLINED: "Declined",
}


async def board(request: Request) -> Response:
    newest, rows = await campaign.board(db(request), actor=actor_of(request))
    counts = {state: sum(1 for row in rows if row.state is state) for state in campaign.CampaignState}
    return render(request, "signing/board.html", {
        "newest": newest, "rows": rows, "counts": counts, "labels": STATE_LABELS,
        "up_to_date": sum(1 for row in rows if row.in_force is not None and not row.outdated),
        "reminder_days": settings_of(request).resign_reminder_days,
    })


async def redline(request: Request) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    agreement = await access.agreement_of(db(request), actor=actor, org=org,
                                            agreement_id=request.path_params["agreement_id"])
    found = await campaign.redline_for(db(request), org=org, agreement=agreement)
    return render(request, "signing/redline.html", {
        "org": org, "agreement": agreement, "redline": found,
        "changed": sum(1 for line in found.lines if line.op != "same"),
    })


routes: list[BaseRoute] = [
    Route("/agreements", board, methods=["GET"]),
    Route(AGREEMENT + "/redline", redline, methods=["GET"]),
]
