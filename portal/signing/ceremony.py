"""The signing ceremony: a signatory of the client signs the exact document prepared (``preparation``), or declines;
the vendor countersigns, and the executed agreement is sealed (``execution``).

Invariants:
- only the client's signatories sign or decline (``SIGN_AGREEMENTS``), only vendor owners and legal countersign
  (``MANAGE_AGREEMENTS``); anyone outside the client organisation and the vendor gets 404;
- a signature binds the document hash shown on the button: a request naming another hash, or made after the
  template version was superseded, is refused and records nothing;
- every transition is one conditional UPDATE from the state it leaves (``access.move``): of two signatories pressing at
  once, or a double submit, exactly one moves the agreement and the other is told it has already been signed;
- a signature needs the typed full name and title, the authority statement and the consent to transact
  electronically; the consent is recorded as an event before the signature (legal requirements 19-21), with the
  exact texts shown;
- an agreement is executed only with both parties' signatures (requirement 25); a click in the portal is a simple
  electronic signature and is recorded as ``SES`` (requirement 18).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements.events import Origin, append
from portal.agreements.models import (
    Agreement,
    AgreementStatus,
    EventType,
    Party,
    Signature,
    SignatureLevel,
)
from portal.agreements.service import active_agreement
from portal.db import utcnow
from portal.dpa.models import TemplateVersion
from portal.dpa.templates import latest_published
from portal.errors import Conflict, InvalidInput
from portal.settings import Settings
from portal.signing.access import agreement_of, move, require_client, template_of
from portal.signing.execution import execute

CONSENT_TEXT = ("I agree that {client} and {vendor} conclude this agreement in electronic form, and that notices "
                "under it are given and received electronically: in the portal and by email to the designated "
                "contacts.")
AUTHORITY_TEXT = "I am authorised to sign this agreement on behalf of {client} and to bind {client} by my signature."
VENDOR_AUTHORITY_TEXT = "I am authorised to sign this agreement on behalf of {vendor} and to bind {vendor}."


def button_label(agreement: Agreement, template: TemplateVersion) -> str:
    """What the signing button says: the version and the start of the hash it signs (requirement 19)."""
    return (f"Sign version {template.number} of the data processing agreement "
            f"(document {agreement.document_sha256[:12]})")


def consent_text(client: str, vendor: str) -> str:
    return CONSENT_TEXT.format(client=client, vendor=vendor)



# ---------------------------------------------------------------- signing

@dataclass(frozen=True)
class SignInput:
    full_name: str
    title: str
    document_sha256: str
    authority: bool
    consent: bool


def _checked_signature(data: SignInput, agreement: Agreement) -> tuple[str, str]:
    errors: dict[str, str] = {}
    name, title = data.full_name.strip(), data.title.strip()
    if not name:
        errors["full_name"] = "Type your full name: it is your signature."
    elif len(name) > 200:
        errors["full_name"] = "At most 200 characters."
    if not title:
        errors["title"] = "Type your title or position."
    elif len(title) > 200:
        errors["title"] = "At most 200 characters."
    if not data.authority:
        errors["authority"] = "Confirm that you may bind the organisation, or ask someone who may to sign."
    if not data.consent:
        errors["consent"] = "Signing here needs your agreement to conclude the agreement electronically."
    if errors:
        raise InvalidInput("Nothing was signed. " + " ".join(errors.values()), fields=errors)
    if data.document_sha256 != agreement.document_sha256:
        raise Conflict("The document changed since this page was opened; nothing was signed. Review it again.")
    return name, title


async def _check_current(session: AsyncSession, agreement: Agreement) -> TemplateVersion:
    template = await template_of(session, agreement)
    latest = await latest_published(session)
    if agreement.status is AgreementStatus.SUPERSEDED or latest is None or latest.id != template.id:
        raise Conflict(f"Version {template.number} has been superseded by a newer version of the agreement; "
                       "nothing was signed.")
    return template


async def _signature(session: AsyncSession, agreement: Agreement, *, party: Party, actor: Actor, name: str,
                     title: str, organisation: str, consent: str, authority: str, label: str,
                     origin: Origin) -> Signature:
    signature = Signature(id=uuid.uuid4(), org_id=agreement.org_id, agreement_id=agreement.id, party=party,
                          user_id=actor.user_id, name=name, title=title, organisation=organisation,
                          email=actor.user.email if actor.user else "", auth_method=origin.auth_method or "system",
                          level=SignatureLevel.SES, signed_at=utcnow(), document_sha256=agreement.document_sha256,
                          consent_text=consent, authority_statement=authority, button_label=label, ip=origin.ip[:64],
                          user_agent=origin.user_agent[:300])
    session.add(signature)
    await session.flush()
    return signature


async def sign(session: AsyncSession, *, actor: Actor, org: Organisation, agreement_id: str, data: SignInput,
               origin: Origin, settings: Settings, vendor_name: str) -> Agreement:
    """The client's signature on exactly the document awaiting it (once: a second press is told it is done)."""
    require_client(actor, org, Permission.SIGN_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    if agreement.status is not AgreementStatus.AWAITING_SIGNATURE:
        raise _not_awaiting(agreement)
    template = await _check_current(session, agreement)
    name, title = _checked_signature(data, agreement)
    if not await move(session, agreement, AgreementStatus.AWAITING_SIGNATURE,
                       AgreementStatus.AWAITING_COUNTERSIGNATURE):
        raise Conflict("This agreement has just been signed by someone else; nothing more was signed.")
    consent = consent_text(org.name, vendor_name)
    authority = AUTHORITY_TEXT.format(client=org.name)
    label = button_label(agreement, template)
    await append(session, org, agreement, type=EventType.CONSENTED, actor=actor, origin=origin,
                 data={"consent_text": consent})
    signature = await _signature(session, agreement, party=Party.CLIENT, actor=actor, name=name, title=title,
                                 organisation=org.name, consent=consent, authority=authority, label=label,
                                 origin=origin)
    await append(session, org, agreement, type=EventType.SIGNED, actor=actor, origin=origin, data={
        "party": "client", "name": name, "title": title, "document_sha256": agreement.document_sha256,
        "button_label": label, "authority_statement": authority, "assurance": origin.assurance,
        "signature_id": str(signature.id)})
    await audit.record(session, actor=actor, tag="agreement:signed", subject=agreement, org_id=org.id,
                       data={"party": "client", "name": name, "document_sha256": agreement.document_sha256})
    if (countersignatory := settings.auto_countersignatory) is not None:
        await _countersign(session, agreement=agreement, org=org, template=template, name=countersignatory[0],
                           title=countersignatory[1], actor=Actor.system("auto-countersign"), origin=Origin(),
                           settings=settings, vendor_name=vendor_name)
    return agreement


def _not_awaiting(agreement: Agreement) -> Conflict:
    if agreement.status is AgreementStatus.SUPERSEDED:
        return Conflict("This version has been superseded by a newer version of the agreement; nothing was signed.")
    if agreement.status in (AgreementStatus.AWAITING_COUNTERSIGNATURE, AgreementStatus.EXECUTED):
        return Conflict("This agreement has already been signed for the client.")
    return Conflict(f"This agreement is not awaiting a signature (it is {agreement.status.label.lower()}).")


async def decline(session: AsyncSession, *, actor: Actor, org: Organisation, agreement_id: str, reason: str,
                  origin: Origin) -> Agreement:
    """The client's signatory declines to sign, saying why; the admin can start again from the same details."""
    require_client(actor, org, Permission.SIGN_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Say why you decline: the admin and the vendor read it.", fields={"reason": "Required."})
    if len(reason) > 2000:
        raise InvalidInput("The reason is longer than 2000 characters.", fields={"reason": "Too long."})
    if not await move(session, agreement, AgreementStatus.AWAITING_SIGNATURE, AgreementStatus.DECLINED,
                       decline_reason=reason, ended_at=utcnow()):
        raise _not_awaiting(agreement)
    await append(session, org, agreement, type=EventType.DECLINED, actor=actor, origin=origin,
                 data={"reason": reason})
    await audit.record(session, actor=actor, tag="agreement:declined", subject=agreement, org_id=org.id,
                       data={"reason": reason})
    return agreement


# ---------------------------------------------------------------- countersigning and execution

@dataclass(frozen=True)
class CountersignInput:
    full_name: str
    title: str
    document_sha256: str
    authority: bool


async def countersign(session: AsyncSession, *, actor: Actor, org: Organisation, agreement_id: str,
                      data: CountersignInput, origin: Origin, settings: Settings, vendor_name: str) -> Agreement:
    """The vendor's countersignature, which executes and seals the agreement."""
    actor.require_vendor(Permission.MANAGE_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    if agreement.status is not AgreementStatus.AWAITING_COUNTERSIGNATURE:
        raise Conflict("This agreement is not awaiting the vendor's countersignature"
                       f" (it is {agreement.status.label.lower()}).")
    template = await template_of(session, agreement)
    checked = SignInput(data.full_name, data.title, data.document_sha256, data.authority, consent=True)
    name, title = _checked_signature(checked, agreement)
    await _countersign(session, agreement=agreement, org=org, template=template, name=name, title=title,
                       actor=actor, origin=origin, settings=settings, vendor_name=vendor_name)
    return agreement


async def _countersign(session: AsyncSession, *, agreement: Agreement, org: Organisation, template: TemplateVersion,
                       name: str, title: str, actor: Actor, origin: Origin, settings: Settings,
                       vendor_name: str) -> None:
    now = utcnow()
    previous = await active_agreement(session, org)
    if previous is not None:  # the one in force gives way first: one executed agreement per client
        await move(session, previous, AgreementStatus.EXECUTED, AgreementStatus.SUPERSEDED, ended_at=now,
                    end_reason=f"superseded by {agreement.reference}")
        await append(session, org, previous, type=EventType.SUPERSEDED, actor=actor, origin=origin,
                     data={"by": agreement.reference})
        await audit.record(session, actor=actor, tag="agreement:superseded", subject=previous, org_id=org.id,
                           data={"by": agreement.reference})
    if not await move(session, agreement, AgreementStatus.AWAITING_COUNTERSIGNATURE, AgreementStatus.EXECUTED,
                       executed_at=now, signed_on=now.date()):
        raise Conflict("This agreement has already been countersigned.")
    label = f"Countersign version {template.number} (document {agreement.document_sha256[:12]})"
    authority = VENDOR_AUTHORITY_TEXT.format(vendor=vendor_name)
    signature = await _signature(session, agreement, party=Party.VENDOR, actor=actor, name=name, title=title,
                                 organisation=vendor_name, consent=consent_text(org.name, vendor_name),
                                 authority=authority, label=label, origin=origin)
    await append(session, org, agreement, type=EventType.COUNTERSIGNED, actor=actor, origin=origin, data={
        "party": "vendor", "name": name, "title": title, "document_sha256": agreement.document_sha256,
        "button_label": label, "authority_statement": authority, "signature_id": str(signature.id),
        "automatic": actor.trusted})
    await audit.record(session, actor=actor, tag="agreement:countersigned", subject=agreement, org_id=org.id,
                       data={"name": name, "document_sha256": agreement.document_sha256})
    await execute(session, agreement=agreement, org=org, template=template, actor=actor, origin=origin,
                  settings=settings, vendor_name=vendor_name)
