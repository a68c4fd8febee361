"""The signing ceremony: a client's admin prepares the agreement, a signatory of the client signs the exact document,
the vendor countersigns, and the executed agreement is sealed.

Invariants:
- only the client's admins prepare and send (``PREPARE_AGREEMENTS``), only its signatories sign or decline
  (``SIGN_AGREEMENTS``), only vendor owners and legal countersign (``MANAGE_AGREEMENTS``); anyone outside the
  client organisation and the vendor gets 404;
- a signature binds the document hash shown on the button: a request naming another hash, or made after the
  template version was superseded, is refused and records nothing;
- every transition is one conditional UPDATE from the state it leaves (``_move``): of two signatories pressing at
  once, or a double submit, exactly one moves the agreement and the other is told it has already been signed;
- a signature needs the typed full name and title, the authority statement and the consent to transact
  electronically; the consent is recorded as an event before the signature (legal requirements 19-21), with the
  exact texts shown;
- an agreement is executed only with both parties' signatures (requirement 25); a click in the portal is a simple
  electronic signature and is recorded as ``SES`` (requirement 18).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from portal import audit
from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.accounts.roles import Permission, Role
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
    Party,
    Signature,
    SignatureLevel,
)
from portal.db import utcnow
from portal.dpa.models import TemplateVersion
from portal.dpa.templates import latest_published
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.notifications import catalog
from portal.notifications.service import notify
from portal.settings import Settings
from portal.tenancy import get_scoped, scoped

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


def link(settings: Settings, agreement: Agreement) -> str:
    return f"{settings.base_url}/orgs/{agreement.org_id}/agreements/{agreement.id}"


# ---------------------------------------------------------------- finding agreements

WITH_DOCUMENT = (undefer(Agreement.document_docx), undefer(Agreement.document_context))


async def agreement_of(session: AsyncSession, *, actor: Actor, org: Organisation,
                       agreement_id: uuid.UUID | str) -> Agreement:
    """One of ``org``'s agreements for its own members and vendor staff (404 for anyone else)."""
    if actor.org is None or (actor.org.id != org.id and not actor.org.is_vendor):
        raise NotFound()
    return await get_scoped(session, Agreement, agreement_id, org, *WITH_DOCUMENT)


async def open_agreement(session: AsyncSession, org: Organisation) -> Agreement | None:
    return (await session.execute(scoped(
        select(Agreement).where(Agreement.status.in_(sorted(s.value for s in AgreementStatus if s.is_open)))
        .options(*WITH_DOCUMENT), Agreement, org))).scalar_one_or_none()


async def signatories(session: AsyncSession, org: Organisation) -> list[User]:
    """The people of ``org`` who may sign agreements, by name."""
    rows = await session.execute(scoped(
        select(User).join(Membership, Membership.user_id == User.id).join(MembershipRole)
        .where(MembershipRole.role == Role.SIGNATORY, User.disabled_at.is_(None)).order_by(User.name),
        Membership, org))
    return list(rows.scalars().unique())


async def template_of(session: AsyncSession, agreement: Agreement) -> TemplateVersion:
    template = await session.get(TemplateVersion, agreement.template_version_id)
    if template is None:
        raise NotFound()
    return template


def _require_client(actor: Actor, org: Organisation, permission: Permission) -> None:
    """Members of ``org`` holding ``permission``; vendor staff and others act here only through their own paths."""
    if actor.org is None or actor.org.id != org.id:
        if actor.org is not None and actor.org.is_vendor:
            raise Forbidden("Only the client's own people do this.")
        raise NotFound()
    actor.require(permission)


async def _move(session: AsyncSession, agreement: Agreement, source: AgreementStatus, target: AgreementStatus,
                **values: object) -> bool:
    """Move ``agreement`` from ``source`` to ``target`` if it is still there; False when another request did first."""
    done = await session.execute(
        update(Agreement).where(Agreement.id == agreement.id, Agreement.status == source.value)
        .values(status=target.value, **values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(agreement, ["status", *values])
    return True


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
    _require_client(actor, org, Permission.PREPARE_AGREEMENTS)
    details = agreement_details.clean(data.details)
    signatory = await _signatory(session, org, data.signatory_id)
    template = await latest_published(session)
    if template is None:
        raise InvalidInput("The vendor has not published a DPA template yet; there is nothing to sign.")
    agreement = await open_agreement(session, org)
    if agreement is not None and agreement.status is not AgreementStatus.DRAFT:
        raise Conflict("This agreement has already been sent for signature; its details can no longer change.")
    # Terms carry over from the agreement being prepared, else from the one in force (also one signed on paper).
    basis = agreement or (await session.execute(scoped(
        select(Agreement).where(Agreement.status == AgreementStatus.EXECUTED), Agreement, org))).scalar_one_or_none()
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
    rendered = await render_agreement(session, agreement=agreement, template=template, settings=settings,
                                      day=utcnow().date())
    agreement.document_docx = rendered.docx
    agreement.document_sha256 = hashlib.sha256(rendered.docx).hexdigest()
    agreement.bound_to = rendered.bindings
    agreement.document_context = rendered.context
    await session.flush()
    summary = {"template_version": template.number, "document_sha256": agreement.document_sha256,
               "signatory": signatory.email, "notice_days": terms.notice_days,
               "breach_target_hours": terms.breach_target_hours, "authorisation": terms.authorisation.value}
    await append(session, org, agreement, type=EventType.CREATED if created else EventType.DETAILS_SAVED,
                 actor=actor, origin=origin, data=summary)
    await audit.record(session, actor=actor, tag="agreement:drafted" if created else "agreement:details_saved",
                       subject=agreement, org_id=org.id, data=summary)
    return agreement


async def send_for_signature(session: AsyncSession, *, actor: Actor, org: Organisation, agreement_id: str,
                             origin: Origin, settings: Settings) -> Agreement:
    """Fix the document and ask the client's signatories to sign it."""
    _require_client(actor, org, Permission.PREPARE_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    template = await template_of(session, agreement)
    latest = await latest_published(session)
    if latest is None or latest.id != template.id:
        raise Conflict("A newer DPA template version has been published: save the details again to render the "
                       "document from it before sending.")
    if not await _move(session, agreement, AgreementStatus.DRAFT, AgreementStatus.AWAITING_SIGNATURE,
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
    _require_client(actor, org, Permission.SIGN_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    if agreement.status is not AgreementStatus.AWAITING_SIGNATURE:
        raise _not_awaiting(agreement)
    template = await _check_current(session, agreement)
    name, title = _checked_signature(data, agreement)
    if not await _move(session, agreement, AgreementStatus.AWAITING_SIGNATURE,
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
    _require_client(actor, org, Permission.SIGN_AGREEMENTS)
    agreement = await agreement_of(session, actor=actor, org=org, agreement_id=agreement_id)
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Say why you decline: the admin and the vendor read it.", fields={"reason": "Required."})
    if len(reason) > 2000:
        raise InvalidInput("The reason is longer than 2000 characters.", fields={"reason": "Too long."})
    if not await _move(session, agreement, AgreementStatus.AWAITING_SIGNATURE, AgreementStatus.DECLINED,
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
    from portal.signing.execution import execute

    now = utcnow()
    previous = (await session.execute(scoped(
        select(Agreement).where(Agreement.status == AgreementStatus.EXECUTED), Agreement, org))).scalar_one_or_none()
    if previous is not None:  # the one in force gives way first: one executed agreement per client
        await _move(session, previous, AgreementStatus.EXECUTED, AgreementStatus.SUPERSEDED, ended_at=now,
                    end_reason=f"superseded by {agreement.reference}")
        await append(session, org, previous, type=EventType.SUPERSEDED, actor=actor, origin=origin,
                     data={"by": agreement.reference})
        await audit.record(session, actor=actor, tag="agreement:superseded", subject=previous, org_id=org.id,
                           data={"by": agreement.reference})
    if not await _move(session, agreement, AgreementStatus.AWAITING_COUNTERSIGNATURE, AgreementStatus.EXECUTED,
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
