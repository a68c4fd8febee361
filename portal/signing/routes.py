"""The ceremony's pages: the client's details form, one agreement with its document, the sign, decline, send and
countersign forms, and the downloads.

Who sees what: the client organisation's members and the vendor's staff (``VIEW_CLIENTS``) read an agreement;
everyone else gets 404. The forms check their own permission in the service. A refused form is shown again with
the input as typed and the reason beside its field; its 4xx response rolls everything back.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts import service as accounts_service
from portal.accounts.models import Organisation, User
from portal.accounts.roles import Permission, Role
from portal.agreements import details as agreement_details
from portal.agreements.document import document_blocks
from portal.agreements.events import ASSURANCE, Origin, events_of
from portal.agreements.models import Agreement, AgreementStatus
from portal.agreements.routes import client_org
from portal.dpa.profile import profile_values
from portal.errors import Conflict, InvalidInput, PortalError
from portal.signing import access, ceremony, preparation
from portal.signing.documents import agreement_file, listings
from portal.signing.execution import signatures_of
from portal.signing.seal import certificate_fingerprint, seal_key
from portal.web import actor_of, client_ip, db, form_text, read_form, redirect, render, settings_of

AGREEMENTS = "/orgs/{org_id}/agreements"
AGREEMENT = AGREEMENTS + "/{agreement_id}"
TERMS_FORM = ("notice_days", "breach_target_hours", "subprocessor_authorisation")


def origin_of(request: Request) -> Origin:
    """Where the request came from and how its user logged in (``password+totp`` when a code was asked)."""
    login = getattr(request.state, "login", None)
    method = login.auth_method if login is not None else ""
    if method == "password" and login is not None and login.user.has_totp:
        method = "password+totp"
    return Origin(ip=client_ip(request), user_agent=request.headers.get("user-agent", "")[:300], auth_method=method)


async def vendor_legal_name(request: Request) -> str:
    """The vendor's name as a party: its profile's legal name, else the portal's vendor name."""
    name = (await profile_values(db(request)))["vendor.name"].strip()
    if name:
        return name
    vendor = await accounts_service.vendor_org(db(request))
    return settings_of(request).vendor_name or (vendor.name if vendor else "the vendor")


def _url(org: Organisation, agreement: Agreement | None = None) -> str:
    base = f"/orgs/{org.id}/agreements"
    return f"{base}/{agreement.id}" if agreement is not None else base


# ---------------------------------------------------------------- the details form

async def _starting_values(request: Request, org: Organisation) -> tuple[dict[str, str], dict[str, str], str]:
    """Details, terms and signatory for the form: the open draft's, else the latest agreement's, else defaults."""
    session = db(request)
    latest = await access.open_agreement(session, org) or await access.latest_in_portal(session, org)
    if latest is not None:
        values = agreement_details.form_values(latest.details)
        terms = {"notice_days": "" if latest.notice_days is None else str(latest.notice_days),
                 "breach_target_hours": "" if latest.breach_target_hours is None else str(latest.breach_target_hours),
                 "subprocessor_authorisation": latest.subprocessor_authorisation.value}
        return values, terms, str(latest.signatory_user_id or "")
    values = agreement_details.form_values({"client.name": org.name})
    contacts = await accounts_service.members(session, org=org)
    for role, name in ((Role.PRIVACY_CONTACT, "contacts.subprocessor_changes"), (Role.SECURITY_CONTACT,
                                                                                 "contacts.incidents")):
        values[name] = "; ".join(f"{m.user.name}, {m.user.email}" for m in contacts if role in m.roles)
    return values, {"notice_days": "", "breach_target_hours": "", "subprocessor_authorisation": "general"}, ""


async def details_page(request: Request, *, values: dict[str, str] | None = None,
                       terms: dict[str, str] | None = None, signatory_id: str = "", error: PortalError | None = None,
                       status: int = 200) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    if values is None:
        values, terms, signatory_id = await _starting_values(request, org)
    settings = settings_of(request)
    return render(request, "signing/details.html", {
        "org": org, "groups": agreement_details.groups(), "values": values, "terms": terms or {},
        "signatory_id": signatory_id, "signatories": await access.signatories(db(request), org),
        "negotiable": settings.negotiable_terms, "default_days": settings.subprocessor_notice_days,
        "default_hours": settings.breach_target_hours, "can_prepare": actor.can(Permission.PREPARE_AGREEMENTS)
        and actor.org is not None and actor.org.id == org.id,
        "sensitive_flag": agreement_details.SENSITIVE_FLAG,
        "error": error.message if error else None, "field_errors": error.fields if error else {},
    }, status=status)


async def save_details(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    values = {spec.name: form_text(form, spec.name) for spec in agreement_details.FIELDS}
    values[agreement_details.SENSITIVE_FLAG] = form_text(form, agreement_details.SENSITIVE_FLAG)
    terms = {name: form_text(form, name) for name in TERMS_FORM}
    signatory_id = form_text(form, "signatory_id")
    try:
        agreement = await preparation.save_draft(
            db(request), actor=actor, org=org, origin=origin_of(request), settings=settings_of(request),
            data=preparation.DraftInput(details=values, signatory_id=signatory_id, terms=terms))
    except (InvalidInput, Conflict) as exc:
        return await details_page(request, values=values, terms=terms, signatory_id=signatory_id, error=exc,
                                  status=exc.status)
    return redirect(request, _url(org, agreement),
                    flash="The details are saved and the document is rendered. Review it, then send it for signature.")


# ---------------------------------------------------------------- one agreement

async def agreement_page(request: Request, *, error: PortalError | None = None, failed: str = "",
                         typed: dict[str, str] | None = None, status: int = 200) -> Response:
    actor = actor_of(request)
    org = await client_org(request, actor)
    session = db(request)
    agreement = await access.agreement_of(session, actor=actor, org=org,
                                            agreement_id=request.path_params["agreement_id"])
    if status == 200:  # the session layer wrote first, so this read-then-write cannot be refused its lock
        await preparation.record_view(session, actor=actor, org=org, agreement=agreement, origin=origin_of(request))
    template = await access.template_of(session, agreement) if agreement.in_portal else None
    signatures = await signatures_of(session, org, agreement)
    documents = (await listings(session, org, [agreement.id])).get(agreement.id, [])
    own = actor.org is not None and actor.org.id == org.id
    vendor_name = await vendor_legal_name(request)
    signatory = await session.get(User, agreement.signatory_user_id) if agreement.signatory_user_id else None
    return render(request, "signing/agreement.html", {
        "org": org, "agreement": agreement, "template": template, "signatures": signatures,
        "documents": documents, "events": await events_of(session, org, agreement),
        "blocks": document_blocks(agreement.document_docx) if agreement.document_docx else [],
        "signatory": signatory, "assurance": ASSURANCE, "vendor_name": vendor_name,
        "can_prepare": own and actor.can(Permission.PREPARE_AGREEMENTS),
        "can_sign": own and actor.can(Permission.SIGN_AGREEMENTS),
        "can_countersign": not own and actor.can(Permission.MANAGE_AGREEMENTS),
        "button_label": ceremony.button_label(agreement, template) if template else "",
        "consent_text": ceremony.consent_text(org.name, vendor_name),
        "authority_text": ceremony.AUTHORITY_TEXT.format(client=org.name),
        "vendor_authority_text": ceremony.VENDOR_AUTHORITY_TEXT.format(vendor=vendor_name),
        "seal_fingerprint": certificate_fingerprint(seal_key(settings_of(request))) if documents else "",
        "settings": settings_of(request),
        "error": error.message if error else None, "field_errors": error.fields if error else {},
        "failed": failed, "typed": typed or {},
    }, status=status)


async def send(request: Request) -> Response:
    await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    try:
        agreement = await preparation.send_for_signature(db(request), actor=actor, org=org,
                                                      agreement_id=request.path_params["agreement_id"],
                                                      origin=origin_of(request), settings=settings_of(request))
    except Conflict as exc:
        return await agreement_page(request, error=exc, failed="send", status=exc.status)
    return redirect(request, _url(org, agreement), flash="Sent for signature: the signatory you chose is asked to "
                                                         "sign, and the organisation's admins and signatories are "
                                                         "told.")


def _checked(form: Any, name: str) -> bool:
    return form_text(form, name) in {"yes", "on", "true", "1"}


async def sign(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    typed = {"full_name": form_text(form, "full_name"), "title": form_text(form, "title")}
    data = ceremony.SignInput(typed["full_name"], typed["title"], form_text(form, "document_sha256"),
                              authority=_checked(form, "authority"), consent=_checked(form, "consent"))
    try:
        agreement = await ceremony.sign(db(request), actor=actor, org=org,
                                        agreement_id=request.path_params["agreement_id"], data=data,
                                        origin=origin_of(request), settings=settings_of(request),
                                        vendor_name=await vendor_legal_name(request))
    except (InvalidInput, Conflict) as exc:
        return await agreement_page(request, error=exc, failed="sign", typed=typed, status=exc.status)
    done = ("Signed and countersigned: the agreement is executed." if agreement.status is AgreementStatus.EXECUTED
            else "Signed. The vendor countersigns next; you are notified when the agreement is executed.")
    return redirect(request, _url(org, agreement), flash=done)


async def decline(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    reason = form_text(form, "reason")
    try:
        agreement = await ceremony.decline(db(request), actor=actor, org=org,
                                           agreement_id=request.path_params["agreement_id"], reason=reason,
                                           origin=origin_of(request))
    except (InvalidInput, Conflict) as exc:
        return await agreement_page(request, error=exc, failed="decline", typed={"reason": reason},
                                    status=exc.status)
    return redirect(request, _url(org, agreement), flash="Declined. Your reason is recorded with the agreement.")


async def countersign(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await client_org(request, actor)
    typed = {"full_name": form_text(form, "full_name"), "title": form_text(form, "title")}
    data = ceremony.CountersignInput(typed["full_name"], typed["title"], form_text(form, "document_sha256"),
                                     authority=_checked(form, "authority"))
    try:
        agreement = await ceremony.countersign(db(request), actor=actor, org=org,
                                               agreement_id=request.path_params["agreement_id"], data=data,
                                               origin=origin_of(request), settings=settings_of(request),
                                               vendor_name=await vendor_legal_name(request))
    except (InvalidInput, Conflict) as exc:
        return await agreement_page(request, error=exc, failed="countersign", typed=typed, status=exc.status)
    return redirect(request, _url(org, agreement), flash="Countersigned: the agreement is executed and sealed.")


# ---------------------------------------------------------------- downloads

async def document(request: Request) -> Response:
    """A stored document of the agreement, or ``document`` for the current text of an agreement in progress."""
    actor = actor_of(request)
    org = await client_org(request, actor)
    session = db(request)
    agreement = await access.agreement_of(session, actor=actor, org=org,
                                            agreement_id=request.path_params["agreement_id"])
    found = await agreement_file(session, org, agreement, request.path_params["kind"])
    return found.response()


routes: list[BaseRoute] = [
    Route(AGREEMENTS + "/draft", details_page, methods=["GET"]),
    Route(AGREEMENTS + "/draft", save_details, methods=["POST"]),
    Route(AGREEMENT, agreement_page, methods=["GET"]),
    Route(AGREEMENT + "/send", send, methods=["POST"]),
    Route(AGREEMENT + "/sign", sign, methods=["POST"]),
    Route(AGREEMENT + "/decline", decline, methods=["POST"]),
    Route(AGREEMENT + "/countersign", countersign, methods=["POST"]),
    Route(AGREEMENT + "/documents/{kind}", document, methods=["GET"]),
]
