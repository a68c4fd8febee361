"""A client's AI commitments page: the version applying to the client (today, or on any date asked), its timeline,
a widening version waiting for the client's acceptance with what it changes (to accept or decline), the client's
training settings, and the instructions and answers its admins recorded (with the forms to record them).

The client's members and vendor staff (``VIEW_CLIENTS``) read it; only the client's admins record instructions and
accept or decline versions (``GIVE_INSTRUCTIONS``); anyone else gets 404. A refused form is shown again with its reason.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.roles import Permission
from portal.agreements.routes import client_org
from portal.ai_commitments import acceptance, instructions, ledger, plain, standing
from portal.ai_commitments.document import DATA_CLASSES
from portal.db import utcnow
from portal.errors import InvalidInput, PortalError
from portal.web import actor_of, db, form_text, read_form, redirect, render

PAGE = "/orgs/{org_id}/ai-commitments"


def _day_asked(request: Request, today: dt.date) -> tuple[dt.date, str | None]:
    """The ``on`` date of the query (today when absent), or today with the reason it was not understood."""
    raw = request.query_params.get("on", "").strip()
    if not raw:
        return today, None
    try:
        return dt.date.fromisoformat(raw), None
    except ValueError:
        return today, f"'{raw[:20]}' is not a date (YYYY-MM-DD): showing today."


async def page(request: Request, *, error: PortalError | None = None, typed: dict[str, str] | None = None,
               status: int = 200) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    session = db(request)
    today = utcnow().date()
    day, day_error = _day_asked(request, today)
    position = await standing.standing_of(session, org, today)
    shown = position.on(day)
    newest, base = position.newest, position.timeline[-1].version if position.timeline else None
    waiting = position.waiting
    own_admin = actor.org is not None and actor.org.id == org.id and actor.can(Permission.GIVE_INSTRUCTIONS)
    return render(request, "ai_commitments/client.html", {
        "org": org, "position": position, "states": standing.State, "day": day, "today": today,
        "day_error": day_error, "shown": shown, "terms": plain.terms(shown.version.document) if shown else None,
        "waiting": waiting, "declined": position.declines.get(newest.number or 0) if waiting and newest else None,
        "changes": plain.changes(ledger.field_changes(base.document, newest.document))
        if waiting and base is not None and newest is not None else [],
        "statement": acceptance.statement_for(org, newest.number or 0, newest.sha256) if waiting and newest else "",
        "settings": await instructions.settings_of(session, org), "history": await instructions.history(session, org),
        "classes": DATA_CLASSES, "typed": typed or {}, "can_instruct": own_admin,
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


async def accept(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    try:
        row = await acceptance.accept(db(request), actor=actor, org=org, number=form_text(form, "version"),
                                      confirmed=form_text(form, "confirm") == "yes")
    except InvalidInput as exc:
        return await page(request, error=exc, status=400)
    return redirect(request, f"/orgs/{org.id}/ai-commitments",
                    flash=f"Recorded: {org.name} accepts version {row.number} of the AI commitments.")


async def decline(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    typed = {"reason": form_text(form, "reason")}
    try:
        row = await acceptance.decline(db(request), actor=actor, org=org, number=form_text(form, "version"),
                                       reason=typed["reason"])
    except InvalidInput as exc:
        return await page(request, error=exc, typed=typed, status=400)
    return redirect(request, f"/orgs/{org.id}/ai-commitments",
                    flash=f"Recorded: {org.name} declines version {row.number}. The version that applies to "
                          f"{org.name} stays in force, and the vendor sees the reason.")


routes: list[BaseRoute] = [
    Route(PAGE, page, methods=["GET"]),
    Route(PAGE + "/instructions", record, methods=["POST"]),
    Route(PAGE + "/acceptances", accept, methods=["POST"]),
    Route(PAGE + "/declines", decline, methods=["POST"]),
]
