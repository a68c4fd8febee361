"""A client's AI commitments page: the commitments in force, the client's training settings, and the instructions
its admin recorded (and the form to record one).

The client's members and vendor staff (``VIEW_CLIENTS``) read it; only the client's admins record instructions
(``GIVE_INSTRUCTIONS``); anyone else gets 404. A refused instruction is shown again with its reason.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.roles import Permission
from portal.agreements.routes import client_org
from portal.ai_commitments import instructions, ledger, plain
from portal.ai_commitments.document import DATA_CLASSES
from portal.db import utcnow
from portal.errors import InvalidInput, PortalError
from portal.web import actor_of, db, form_text, read_form, redirect, render

PAGE = "/orgs/{org_id}/ai-commitments"


async def page(request: Request, *, error: PortalError | None = None, typed: dict[str, str] | None = None,
               status: int = 200) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    session = db(request)
    in_force = await ledger.in_force_on(session, utcnow().date())
    return render(request, "ai_commitments/client.html", {
        "org": org, "in_force": in_force, "terms": plain.terms(in_force.document) if in_force else None,
        "settings": await instructions.settings_of(session, org), "history": await instructions.history(session, org),
        "classes": DATA_CLASSES, "typed": typed or {},
        "can_instruct": actor.org is not None and actor.org.id == org.id and actor.can(Permission.GIVE_INSTRUCTIONS),
        "error": error.message if error else None, "field_errors": error.fields if error else {},
    }, status=status)


async def record(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    typed = {"data_class": form_text(form, "data_class"), "training": form_text(form, "training"),
             "note": form_text(form, "note")}
    try:
        row = await instructions.record(db(request), actor=actor, org=org, data_class=typed["data_class"],
                                        enabled=typed["training"] == "on", note=typed["note"])
    except InvalidInput as exc:
        return await page(request, error=exc, typed=typed, status=400)
    state = "on" if row.enabled else "off"
    return redirect(request, f"/orgs/{org.id}/ai-commitments",
                    flash=f"Recorded: training on {DATA_CLASSES[row.data_class].lower()} is {state} for {org.name}.")


routes: list[BaseRoute] = [
    Route(PAGE, page, methods=["GET"]),
    Route(PAGE + "/instructions", record, methods=["POST"]),
]
