"""The vendor's objections board and the form that resolves one objection.

Vendor staff read the board; resolving needs ``MANAGE_SUBPROCESSORS``; clients get 404 (``vendor_staff``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts import service as accounts_service
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.errors import InvalidInput
from portal.subprocessors import responses
from portal.subprocessors.client_view import who
from portal.subprocessors.models import KIND_LABELS, Resolution
from portal.subprocessors.registry_routes import page_errors, vendor_staff
from portal.web import db, form_text, read_form, redirect, render, settings_of

BOARD = "/registry/objections"
OBJECTION = "/orgs/{org_id}/objections/{objection_id}/resolve"


async def board(request: Request) -> Response:
    actor = vendor_staff(request)
    show_all = request.query_params.get("all") == "1"
    rows = await responses.objections_board(db(request), actor=actor, open_only=not show_all)
    return render(request, "registry/objections.html", {
        "rows": rows, "show_all": show_all, "who": who, "kinds": KIND_LABELS,
        "can_resolve": actor.can(Permission.MANAGE_SUBPROCESSORS),
    })


async def _board_row(request: Request, actor: Actor) -> responses.BoardRow:
    """The objection in the path, if it belongs to the organisation in the path (else 404)."""
    session = db(request)
    org = await accounts_service.visible_org(session, actor=actor, org_id=request.path_params["org_id"])
    return await responses.board_row(session, actor=actor, org=org, objection_id=request.path_params["objection_id"])


async def resolve_page(request: Request, *, values: dict[str, str] | None = None,
                       error: InvalidInput | None = None, status: int = 200) -> Response:
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    row = await _board_row(request, actor)
    return render(request, "registry/resolve.html", {
        "row": row, "who": who, "resolutions": list(Resolution), "values": values or {"resolution": "", "note": ""},
        "kinds": KIND_LABELS, **page_errors(error),
    }, status=status)


async def resolve(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    row = await _board_row(request, actor)
    values = {"resolution": form_text(form, "resolution"), "note": form_text(form, "note")}
    try:
        objection = await responses.resolve(db(request), actor=actor, org=row.org,
                                            objection_id=str(row.objection.id), resolution=values["resolution"],
                                            note=values["note"], base_url=settings_of(request).base_url)
    except InvalidInput as exc:
        return await resolve_page(request, values=values, error=exc, status=400)
    outcome = objection.resolution.label if objection.resolution else ""
    return redirect(request, BOARD, flash=f"{row.org.name}'s objection to {row.authorisation.entry_name} is resolved "
                                          f"({outcome}); {row.org.name} is notified.")


routes: list[BaseRoute] = [
    Route(BOARD, board, methods=["GET"]),
    Route(OBJECTION, resolve_page, methods=["GET"]),
    Route(OBJECTION, resolve, methods=["POST"]),
]
