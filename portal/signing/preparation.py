"""Preparing an agreement: the client's admin saves its details (rendered at once into the document to be signed,
with its hash), sends it to the client's signatories, and each signatory's first look is recorded.

Invariants: only the client's admins prepare and send (``PREPARE_AGREEMENTS``); the signatory chosen holds the
signatory role; the document is rendered from the newest published template and fixed when it is sent; terms come
from the form only where the vendor allows negotiation, else from the agreement in force or the vendor's defaults.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation, User
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements import details as agreement_details
from portal.agreements.document import render_agreement
from portal.agreements.events import Origin, append, events_of
from portal.agreements.models import (
    Agreement,
    AgreementSource,
    AgreementStatus,
    Authorisation,
    EventType,
)
from portal.agreements.service import active_agreement
from portal.db import utcnow
from portal.dpa.models import TemplateVersion
from portal.dpa.templates import latest_published
from portal.errors import Conflict, InvalidInput
from portal.notifications import catalog
from portal.notifications.service import notify
from portal.settings import Settings
from portal.signing.access import agreement_of, link, move, open_agreement, require_client, signatories, template_of

# ---------------------------------------------------------------- preparing

@dataclass(frozen=True)
class DraftInput:
    details: Mapping[str, str]
    signatory_id: str
    terms: Mapping[str, str]


async def _signatory(session: AsyncSession, org: Organisation, raw_id: str) -> User:
    for user in await signatories(session, org):
        if str(user.id) == raw_id:
            return user
    message = ("Choose who signs for the organisation: someone holding the signatory role (give a colleague that "
               "role on the people page first).")
    raise InvalidInput(message, fields={"signatory_id": message})


def _reference(agreement_id: uuid.UUID, today: dt.date) -> str:
    return f"DPA-{today:%Y}-{agreement_id.hex[:8].upper()}"


async def save_draft(session: AsyncSession, *, actor: Actor, org: Organisation, data: DraftInput,
                     origin: Origin, settings: Settings) -> Agreement:
    """Create or update the client's draft from its details, render it and keep the document with its hash."""
    require_client(actor, org, Permission.PREPARE_AGREEMENTS)
    details = agreement_details.clean(data.details)
    signatory = await _signatory(session, org, data.signatory_id)
    template = await latest_published(session)
    if template is None:
        raise InvalidInput("The vendor has not published a DPA template yet; there is nothing to sign.")
    agreement = await open_agreement(session, org)
    if agreement is not None and agreement.status is not AgreementStatus.DRAFT:
        raise Conflict("This agreement has already been sent for signature; its details can no longer change.")
    # Terms carry over from the agreement being prepared, else from the one in force (also one signed on paper).
    basis = agreement or await active_agreement(session, org)
    current = agreement_details.Terms(basis.notice_days if basis else None,
                                      basis.breach_target_hours if basis else None,
                                      basis.subprocessor_authorisation if basis else Authorisation.GENERAL)
    terms = agreement_details.clean_terms(data.terms, allowed=settings.negotiable_terms, current=current)
    created = agreement is None
    if agreement is None:
        new_id = uuid.uuid4()
        agreement = Agreement(id=new_id, org_id=org.id, reference=_reference(new_id, utcnow().date()),
                              source=AgreementSource.SIGNED, status=AgreementStatus.DRAFT, recorded_by=actor.label,
                              subprocessor_authorisation=terms.authorisation)
        session.add(agreement)
    agreement.details = details
    agreement.signatory_user_id = signatory.id
    agreement.template_version_id = template.id
    agreement.notice_days, agreement.breach_target_hours = terms.notice_days, terms.breach_target_hours
    agreement.subprocessor_authorisation = terms.authorisation
    await session.flush()
    await render_document(session, agreement=agreement, template=template, settings=settings)
    summary = {"template_version": template.number, "document_sha256": agreement.document_sha256,
               "signatory": signatory.email, "notice_days": terms.notice_days,
               "breach_target_hours": terms.breach_target_hours, "authorisation": terms.authorisation.value}
    await append(session, org, agreement, type=EventType.CREATED if created else EventType.DETAILS_SAVED,
                 actor=actor, origin=origin, data=summary)
    await audit.record(session, actor=actor, tag="agreement:drafted" if created else "agreement:details_saved",
                       subject=agreement, org_id=org.id, data=summary)
    return agreement


async def render_document(session: AsyncSession, *, agreement: Agreement, template: TemplateVersion,
                          settings: Settings) -> None:
    """Render ``agreement`` from ``template`` as of today and keep the document, its hash, what it is bound to and
    the values it was rendered with (the executed copy is rendered again from them)."""
    rendered = await render_agreement(session, agreement=agreement, template=template, settings=settings,
                                      day=utcnow().date())
    agreement.document_docx = rendered.docx
    agreement.document_sha256 = hashlib.sha256(rendered.docx).hexdigest()
    agreement.bound_to = rendered.bindings
    agreement.document_context = rendered.context
    await session.flush()


async def send_for_signature(session: AsyncSession, *, actor: Actor, org: Organisation, agreement_id: str,
                             origin: Origin, settings: Settings) -> Agreement:
    """Fix the document and ask the client's signatories to sign it."""
    require_client(actor, org, Permission.PREPARE_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    template = await template_of(session, agreement)
    latest = await latest_published(session)
    if latest is None or latest.id != template.id:
        raise Conflict("A newer DPA template version has been published: save the details again to render the "
                       "document from it before sending.")
    if not await move(session, agreement, AgreementStatus.DRAFT, AgreementStatus.AWAITING_SIGNATURE,
                       sent_at=utcnow()):
        raise Conflict("This agreement has already been sent for signature.")
    signatory = await session.get(User, agreement.signatory_user_id) if agreement.signatory_user_id else None
    await append(session, org, agreement, type=EventType.SENT_FOR_SIGNATURE, actor=actor, origin=origin,
                 data={"document_sha256": agreement.document_sha256,
                       "signatory": signatory.email if signatory else ""})
    await audit.record(session, actor=actor, tag="agreement:sent_for_signature", subject=agreement, org_id=org.id,
                       data={"document_sha256": agreement.document_sha256})
    await notify(session, actor=actor, orgs=[org], subject=agreement, content=catalog.signature_request(
        version=str(template.number), due_date=None, link=link(settings, agreement), reference=agreement.reference,
        signatory=f"{signatory.name} ({signatory.email})" if signatory else ""))
    return agreement


async def record_view(session: AsyncSession, *, actor: Actor, org: Organisation, agreement: Agreement,
                      origin: Origin) -> bool:
    """Note that a signatory opened the document awaiting their signature (once per person)."""
    if (agreement.status is not AgreementStatus.AWAITING_SIGNATURE or actor.org is None or actor.org.id != org.id
            or not actor.can(Permission.SIGN_AGREEMENTS)):
        return False
    seen = any(e.type is EventType.VIEWED and e.user_id == actor.user_id
               for e in await events_of(session, org, agreement))
    if seen:
        return False
    await append(session, org, agreement, type=EventType.VIEWED, actor=actor, origin=origin,
                 data={"document_sha256": agreement.document_sha256})
    return True

