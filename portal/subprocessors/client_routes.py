"""A client's "Our sub-processors" page, its answers to changes (object with a reason, approve), and the link in
change notices, which leads each reader to where they can act on the version."""

from __future__ import annotations

import uuid

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.errors import InvalidInput
from portal.subprocessors import client_view, registry, responses
from portal.web import actor_of, db, form_text, read_form, redirect, render, require_member, settings_of

NO_STORE = {"Cache-Control": "no-store"}


def _page_url(request: Request) -> str:
    return f"/orgs/{request.path_params['org_id']}/subprocessors"


async def page(request: Request, *, error: InvalidInput | None = None, failed: str = "", reason: str = "",
               status: int = 200) -> Response:
    view = await client_view.for_client(db(request), actor=actor_of(request), org_id=request.path_params["org_id"],
                                        default_notice_days=settings_of(request).subprocessor_notice_days)
    return render(request, "subprocessors/client/index.html", {
        "view": view, "sections": view.sections(), "error": error.message if error else None,
        "field_errors": error.fields if error else {}, "failed": failed, "reason": reason,
    }, status=status, headers=NO_STORE)


async def object_to(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_view.client_org(db(request), actor=actor, org_id=request.path_params["org_id"])
    authorisation_id = request.path_params["authorisation_id"]
    reason = form_text(form, "reason")
    try:
        await responses.object_to(db(request), actor=actor, org=org, authorisation_id=authorisation_id,
                                  reason=reason)
    except InvalidInput as exc:
        # Shown again beside the form it came from, with what was typed; the 400 rolls everything back.
        return await page(request, error=exc, failed=authorisation_id, reason=reason[:responses.MAX_REASON],
                          status=400)
    return redirect(request, f"{_page_url(request)}#change-{uuid.UUID(authorisation_id)}",
                    flash="Your objection is recorded. The change does not apply to your data while the objection "
                          "is open; you will be told how it is resolved.")


async def approve(request: Request) -> Response:
    await read_form(request)
    actor = actor_of(request)
    org = await client_view.client_org(db(request), actor=actor, org_id=request.path_params["org_id"])
    authorisation_id = request.path_params["authorisation_id"]
    try:
        row = await responses.approve(db(request), actor=actor, org=org, authorisation_id=authorisation_id)
    except InvalidInput as exc:
        return await page(request, error=exc, failed=authorisation_id, status=400)
    return redirect(request, f"{_page_url(request)}#change-{row.id}",
                    flash=f"You approved the change to {row.entry_name}.")


async def respond(request: Request) -> Response:
    """The link in change notices: a client member lands on the version in their own organisation's page, vendor
    staff on the version's public page; whoever is not logged in logs in first and comes back here."""
    member = require_member(request)
    version = await registry.version_by_number(db(request), request.path_params["number"])
    if member.org.is_vendor:
        return redirect(request, f"/subprocessors/versions/{version.number}")
    return redirect(request, f"/orgs/{member.org_id}/subprocessors#v{version.number}")


CHANGE = "/orgs/{org_id}/subprocessors/changes/{authorisation_id}"

routes: list[BaseRoute] = [
    Route("/orgs/{org_id}/subprocessors", page, methods=["GET"]),
    Route(CHANGE + "/object", object_to, methods=["POST"]),
    Route(CHANGE + "/approve", approve, methods=["POST"]),
    Route("/subprocessors/versions/{number}/respond", respond, methods=["GET"]),
]
