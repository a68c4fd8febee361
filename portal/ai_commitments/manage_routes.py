"""The vendor's pages for the commitments ledger: the versions and drafts, where each client stands on the newest
version (applying, waiting for its acceptance, accepted; when it was notified), a new draft (started from the version
in force), one draft with what it would change and whether that widens the commitments, and publishing it.

Vendor staff read (``VIEW_CLIENTS``); owners and legal draft and publish (``MANAGE_TEMPLATES``); clients get 404.
A refused form is shown again as typed with each reason beside its field, and nothing is saved.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.roles import Permission
from portal.ai_commitments import document, form, ledger, plain, rollout, standing
from portal.ai_commitments.document import DATA_CLASSES, TRAINING_USES
from portal.errors import InvalidInput, PortalError
from portal.subprocessors.registry_routes import vendor_staff
from portal.web import db, form_text, read_form, redirect, render, settings_of

MANAGE = "/ai-commitments/manage"
DRAFT = MANAGE + "/drafts/{version_id}"


def _errors(error: PortalError | None) -> dict[str, Any]:
    return {"error": error.message if error else None, "field_errors": error.fields if error else {}}


async def index(request: Request, *, values: dict[str, str] | None = None, error: PortalError | None = None,
                status: int = 200) -> Response:
    actor = vendor_staff(request)
    session = db(request)
    published = await ledger.versions(session)
    latest = published[-1] if published else None
    return render(request, "ai_commitments/manage.html", {
        "published": list(reversed(published)), "drafts": await ledger.drafts(session, actor=actor),
        "board": await rollout.board(session, actor=actor), "states": standing.State,
        "values": values if values is not None else (form.values(latest.document) if latest else {}),
        "classes": DATA_CLASSES, "uses": TRAINING_USES, "text_fields": document.TEXT_FIELDS,
        "slots": range(form.FEATURE_SLOTS), "governance": document.GOVERNANCE_FIELDS,
        "can_manage": actor.can(Permission.MANAGE_TEMPLATES), **_errors(error)}, status=status)


async def save_draft(request: Request) -> Response:
    submitted = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    try:
        draft = await ledger.save_draft(db(request), actor=actor, raw=form.read(submitted))
    except InvalidInput as exc:
        return await index(request, values=form.form_values(submitted), error=exc, status=400)
    return redirect(request, f"{MANAGE}/drafts/{draft.id}", flash="The draft is checked and saved. Review what it "
                                                                  "changes, then publish it.")


async def draft_page(request: Request, *, typed: dict[str, str] | None = None, error: PortalError | None = None,
                     status: int = 200) -> Response:
    actor = vendor_staff(request)
    session = db(request)
    version = await ledger.version_of(session, actor=actor, version_id=request.path_params["version_id"])
    latest = await ledger.latest(session)
    base = latest.document if latest is not None and latest.id != version.id else None
    return render(request, "ai_commitments/draft.html", {
        "version": version, "terms": plain.terms(version.document), "latest": latest,
        "kind": document.classify(base, version.document),
        "changes": plain.changes(ledger.field_changes(base, version.document)) if base else [],
        "typed": typed or {}, "can_manage": actor.can(Permission.MANAGE_TEMPLATES), **_errors(error)},
        status=status)


async def publish(request: Request) -> Response:
    submitted = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    typed = {"effective_date": form_text(submitted, "effective_date"), "reason": form_text(submitted, "reason")}
    try:
        version = await rollout.publish(db(request), actor=actor, draft_id=request.path_params["version_id"],
                                        effective_date=typed["effective_date"], reason=typed["reason"],
                                        settings=settings_of(request))
    except InvalidInput as exc:
        return await draft_page(request, typed=typed, error=exc, status=400)
    # To the ledger and its client board (the public version page is cached and shows nobody a message).
    return redirect(request, MANAGE,
                    flash=f"Published as version {version.number}; every client and public subscriber is notified" + (
                        ". It widens the commitments, so it applies to each client only once that client accepts."
                        if version.expanding else f" and it applies on {version.effective_date}."))


routes: list[BaseRoute] = [
    Route(MANAGE, index, methods=["GET"]),
    Route(MANAGE + "/drafts", save_draft, methods=["POST"]),
    Route(DRAFT, draft_page, methods=["GET"]),
    Route(DRAFT + "/publish", publish, methods=["POST"]),
]
