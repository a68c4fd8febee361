"""A client's agreements page: the active agreement and its history, and for the vendor's owners and legal team the
forms to record an agreement signed outside the portal and to end the active one.

Vendor staff with ``VIEW_CLIENTS`` read any client's agreements, a client's own members read theirs, and anyone
else gets 404. Refused input is shown again as typed beside its field, and nothing is saved.
"""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts import service as accounts_service
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements import service
from portal.agreements.models import AgreementSource, AgreementStatus, Authorisation
from portal.errors import InvalidInput, NotFound
from portal.web import actor_of, db, form_text, read_form, redirect, render, settings_of

SOURCE_LABELS = {AgreementSource.RECORDED.value: "Signed outside the portal, recorded by vendor staff",
                 AgreementSource.SIGNED.value: "Signed in the portal"}
EMPTY_RECORD = {"reference": "", "signed_on": "", "authorisation": Authorisation.GENERAL.value, "notice_days": ""}


async def client_org(request: Request, actor: Actor) -> Organisation:
    """The client organisation in the path, if the actor belongs to it or looks after clients (else 404)."""
    org = await accounts_service.visible_org(db(request), actor=actor, org_id=request.path_params["org_id"])
    if org.is_vendor:
        raise NotFound()
    if actor.org is not None and actor.org.id != org.id:
        actor.require(Permission.VIEW_CLIENTS)
    return org


def _url(org: Organisation) -> str:
    return f"/orgs/{org.id}/agreements"


async def page(request: Request, *, failed: str = "", values: dict[str, str] | None = None, reason: str = "",
               error: InvalidInput | None = None, status: int = 200) -> Response:
    """``failed`` names the form ('record' or 'end') whose input was refused, so its message shows beside it."""
    actor = actor_of(request)
    org = await client_org(request, actor)
    history = await service.agreements_of(db(request), org)
    vendor_staff = actor.org is not None and actor.org.is_vendor
    return render(request, "agreements/index.html", {
        "org": org, "history": history,
        "active": next((a for a in history if a.status is AgreementStatus.EXECUTED), None),
        "open": next((a for a in history if a.status.is_open), None),
        "can_prepare": actor.org is not None and actor.org.id == org.id and actor.can(Permission.PREPARE_AGREEMENTS),
        "default_days": settings_of(request).subprocessor_notice_days, "sources": SOURCE_LABELS,
        "authorisations": list(Authorisation), "vendor_staff": vendor_staff,
        "can_manage": vendor_staff and actor.can(Permission.MANAGE_AGREEMENTS),
        "failed": failed, "values": values or EMPTY_RECORD, "reason": reason,
        "error": error.message if error else None, "field_errors": error.fields if error else {},
    }, status=status)


def _record_input(form: FormData) -> dict[str, str]:
    return {name: form_text(form, name) for name in EMPTY_RECORD}


async def record(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    values = _record_input(form)
    try:
        agreement = await service.record_agreement(db(request), actor=actor, org=org,
                                                   data=service.AgreementInput(**values))
    except InvalidInput as exc:
        return await page(request, failed="record", values=values, error=exc, status=400)
    return redirect(request, _url(org), flash=f"Agreement {agreement.reference} is recorded as {org.name}'s active "
                                              "agreement.")


async def end(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    reason = form_text(form, "reason")
    try:
        agreement = await service.end_agreement(db(request), actor=actor, org=org,
                                                agreement_id=request.path_params["agreement_id"], reason=reason)
    except InvalidInput as exc:
        return await page(request, failed="end", reason=reason, error=exc, status=400)
    return redirect(request, _url(org), flash=f"Agreement {agreement.reference} has ended.")


routes: list[BaseRoute] = [
    Route("/orgs/{org_id}/agreements", page, methods=["GET"]),
    Route("/orgs/{org_id}/agreements", record, methods=["POST"]),
    Route("/orgs/{org_id}/agreements/{agreement_id}/end", end, methods=["POST"]),
]
