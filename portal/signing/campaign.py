"""Re-signing campaigns: publishing a new DPA template version asks every client with an agreement to sign it, and
the vendor follows each client's answer on a status board; reminders go out until they sign or decline.

Invariants:
- publishing never changes what binds a client (legal requirement 10): the executed agreement stays in force, now
  marked outdated, until the client signs the new version and the vendor countersigns;
- an agreement still being prepared or awaiting signature on an older version is superseded (a signature on it
  would be refused anyway) and its details carry over, so nothing the client typed is lost;
- a client whose last agreement was made in the portal gets the new version ready to sign, rendered from its own
  details for its own signatory; a client whose agreement was signed outside the portal is asked to fill in the
  details; either way its signatories and admins are notified with the changelog and a link to the redline;
- each client's campaign state is derived from its agreements and their events: signed, viewed, pending, declined.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from portal import audit
from portal.accounts import service as accounts_service
from portal.accounts.models import Organisation
from portal.accounts.roles import OrgKind, Permission
from portal.actors import Actor
from portal.agreements.events import Origin, append, events_of
from portal.agreements.models import Agreement, AgreementSource, AgreementStatus, EventType
from portal.agreements.service import active_agreement
from portal.db import utcnow
from portal.dpa import templates
from portal.dpa.models import TemplateVersion
from portal.errors import NotFound
from portal.notifications import catalog
from portal.notifications.service import notify
from portal.settings import Settings
from portal.signing.access import WITH_DOCUMENT, link, signatories
from portal.signing.preparation import render_document
from portal.tenancy import scoped

SYSTEM = Origin()


class CampaignState(enum.StrEnum):
    SIGNED = "signed"  # the client signed the newest version (awaiting countersignature or executed)
    VIEWED = "viewed"  # its signatory opened the document and has not signed yet
    PENDING = "pending"  # asked and not yet looked at, or waiting for the client to fill in the details
    DECLINED = "declined"


@dataclass(frozen=True)
class Rollout:
    version: TemplateVersion
    ready_to_sign: int  # new agreements awaiting signature
    details_needed: int  # clients asked to fill in the details first
    superseded: int  # open agreements on older versions


async def publish_and_roll_out(session: AsyncSession, *, actor: Actor, version_id: str, changelog: str,
                               settings: Settings) -> Rollout:
    """Publish a template draft and start its re-signing campaign with every client that has an agreement."""
    version = await templates.publish(session, actor=actor, version_id=version_id, changelog=changelog)
    ready = needed = superseded = 0
    for org in await _clients_with_agreements(session):
        prepared, superseded_one = await _roll_out_to(session, org=org, version=version, actor=actor,
                                                      settings=settings)
        ready += prepared
        needed += not prepared
        superseded += superseded_one
    await audit.record(session, actor=actor, tag="dpa_campaign:started", subject=version,
                       data={"version": version.number, "ready_to_sign": ready, "details_needed": needed,
                             "superseded": superseded})
    return Rollout(version, ready, needed, superseded)


async def _clients_with_agreements(session: AsyncSession) -> list[Organisation]:
    rows = await session.execute(
        select(Organisation).where(Organisation.kind == OrgKind.CLIENT,
                                   Organisation.id.in_(select(Agreement.org_id).distinct()))
        .order_by(Organisation.name))
    return list(rows.scalars())


async def _agreements_of(session: AsyncSession, org: Organisation) -> list[Agreement]:
    return list((await session.execute(scoped(
        select(Agreement).options(*WITH_DOCUMENT).order_by(Agreement.created_at.desc()), Agreement, org))).scalars())


async def _roll_out_to(session: AsyncSession, *, org: Organisation, version: TemplateVersion, actor: Actor,
                       settings: Settings) -> tuple[bool, bool]:
    """Ask ``org`` to sign ``version``: (whether an agreement is ready to sign, whether an open one was superseded)."""
    history = await _agreements_of(session, org)
    superseded = False
    for agreement in history:
        if agreement.status.is_open and agreement.template_version_id != version.id:
            agreement.status = AgreementStatus.SUPERSEDED
            agreement.ended_at = utcnow()
            agreement.end_reason = f"template version {version.number} published before it was executed"
            await session.flush()
            await append(session, org, agreement, type=EventType.SUPERSEDED, actor=actor, origin=SYSTEM,
                         data={"template_version": version.number})
            await audit.record(session, actor=actor, tag="agreement:superseded", subject=agreement, org_id=org.id,
                               data={"template_version": version.number})
            superseded = True
    basis = next((a for a in history if a.details), None)
    people = {user.id for user in await signatories(session, org)}
    if basis is None or basis.signatory_user_id not in people:
        await _notify(session, org=org, version=version, actor=actor, settings=settings, agreement=None)
        return False, superseded
    agreement = await _prepared(session, org=org, basis=basis, version=version, actor=actor, settings=settings)
    await _notify(session, org=org, version=version, actor=actor, settings=settings, agreement=agreement)
    return True, superseded


async def _prepared(session: AsyncSession, *, org: Organisation, basis: Agreement, version: TemplateVersion,
                    actor: Actor, settings: Settings) -> Agreement:
    """A new agreement awaiting signature: ``basis``'s details and terms, rendered from ``version``."""
    new_id = uuid.uuid4()
    now = utcnow()
    agreement = Agreement(id=new_id, org_id=org.id, reference=f"DPA-{now:%Y}-{new_id.hex[:8].upper()}",
                          source=AgreementSource.SIGNED, status=AgreementStatus.DRAFT, recorded_by=actor.label,
                          subprocessor_authorisation=basis.subprocessor_authorisation, notice_days=basis.notice_days,
                          breach_target_hours=basis.breach_target_hours, details=dict(basis.details),
                          signatory_user_id=basis.signatory_user_id, template_version_id=version.id)
    session.add(agreement)
    await session.flush()
    await render_document(session, agreement=agreement, template=version, settings=settings)
    agreement.status, agreement.sent_at = AgreementStatus.AWAITING_SIGNATURE, now
    await session.flush()
    data = {"template_version": version.number, "document_sha256": agreement.document_sha256,
            "details_from": basis.reference}
    await append(session, org, agreement, type=EventType.CREATED, actor=actor, origin=SYSTEM, data=data)
    await append(session, org, agreement, type=EventType.SENT_FOR_SIGNATURE, actor=actor, origin=SYSTEM, data=data)
    await audit.record(session, actor=actor, tag="agreement:sent_for_signature", subject=agreement, org_id=org.id,
                       data=data)
    return agreement


async def _notify(session: AsyncSession, *, org: Organisation, version: TemplateVersion, actor: Actor,
                  settings: Settings, agreement: Agreement | None) -> None:
    base = f"{settings.base_url}/orgs/{org.id}/agreements"
    if agreement is not None:
        action = (f"It is ready for your signature, rendered from your current details: {link(settings, agreement)}\n"
                  f"What changed, paragraph by paragraph: {link(settings, agreement)}/redline")
        target = link(settings, agreement)
    else:
        action = f"Please fill in the agreement's details in the portal, then sign it: {base}/draft"
        target = f"{base}/draft"
    summary = (f"What changed: {version.changelog}\n\nYour agreement in force stays in force until you sign the new "
               f"version and we countersign it.\n{action}")
    await notify(session, actor=actor, orgs=[org], subject=agreement or version, content=catalog.dpa_version(
        version=str(version.number), document_sha256=agreement.document_sha256 if agreement else "",
        summary=summary, link=target))


# ---------------------------------------------------------------- the redline a client is shown

@dataclass(frozen=True)
class ClientRedline:
    old: TemplateVersion | None  # the version the client's agreement in force was signed on, else the previous one
    new: TemplateVersion
    lines: list[templates.RedlineLine]


async def redline_for(session: AsyncSession, *, org: Organisation, agreement: Agreement) -> ClientRedline:
    """What changed between the version binding ``org`` now and the one ``agreement`` asks it to sign."""
    new = await session.get(TemplateVersion, agreement.template_version_id)
    if new is None:
        raise NotFound()
    in_force = await active_agreement(session, org)
    old = await session.get(TemplateVersion, in_force.template_version_id) if (
        in_force is not None and in_force.template_version_id is not None) else None
    if old is None and new.number is not None and new.number > 1:
        old = (await session.execute(select(TemplateVersion).where(TemplateVersion.number == new.number - 1))
               ).scalar_one_or_none()
    if old is None or old.id == new.id:
        return ClientRedline(None, new, [])
    return ClientRedline(old, new, templates.redline(old, new))


# ---------------------------------------------------------------- reminders (a scheduled job)

async def send_reminders(session: AsyncSession, *, now: dt.datetime, settings: Settings) -> int:
    """Remind clients whose agreement has awaited signature for the reminder interval since it was sent or last
    reminded; returns how many were reminded."""
    due = now - dt.timedelta(days=settings.resign_reminder_days)
    rows = (await session.execute(
        select(Agreement).where(Agreement.status == AgreementStatus.AWAITING_SIGNATURE, Agreement.sent_at <= due)
        .options(joinedload(Agreement.org)).with_for_update(skip_locked=True, of=Agreement))).scalars().all()
    reminded = 0
    actor = Actor.system("reminders")
    for agreement in rows:
        reminders = [e.at for e in await events_of(session, agreement.org, agreement) if e.type is EventType.REMINDED]
        if reminders and max(reminders) > due:
            continue
        template = await session.get(TemplateVersion, agreement.template_version_id)
        await append(session, agreement.org, agreement, type=EventType.REMINDED, actor=actor, origin=SYSTEM,
                     data={"interval_days": settings.resign_reminder_days}, at=now)
        await notify(session, actor=actor, orgs=[agreement.org], subject=agreement, content=catalog.signature_request(
            version=str(template.number if template else ""), due_date=None, link=link(settings, agreement),
            reference=agreement.reference))
        reminded += 1
    return reminded


# ---------------------------------------------------------------- the vendor's status board

@dataclass(frozen=True)
class BoardRow:
    org: Organisation
    in_force: Agreement | None
    latest: Agreement | None  # the newest agreement of any state
    state: CampaignState | None  # None: the client is on the newest version already, or has no agreement
    outdated: bool  # the agreement in force is on an older version (or was signed outside the portal)


async def board(session: AsyncSession, *, actor: Actor) -> tuple[TemplateVersion | None, list[BoardRow]]:
    """Every client with its agreement in force and where it stands with the newest template version."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    newest = await templates.latest_published(session)
    orgs = await accounts_service.all_clients(session)
    rows: list[BoardRow] = []
    for org in orgs:
        history = list((await session.execute(scoped(select(Agreement).order_by(Agreement.created_at.desc()),
                                                     Agreement, org))).scalars())
        in_force = next((a for a in history if a.status is AgreementStatus.EXECUTED), None)
        latest = history[0] if history else None
        current = newest is not None and in_force is not None and in_force.template_version_id == newest.id
        state = None if current or latest is None or newest is None else await _state(session, org, latest, newest)
        rows.append(BoardRow(org, in_force, latest, state, not current and in_force is not None))
    return newest, rows


async def _state(session: AsyncSession, org: Organisation, latest: Agreement,
                 newest: TemplateVersion) -> CampaignState:
    if latest.template_version_id != newest.id:  # asked to sign the newest version and not started yet
        return CampaignState.PENDING
    if latest.status in (AgreementStatus.AWAITING_COUNTERSIGNATURE, AgreementStatus.EXECUTED):
        return CampaignState.SIGNED
    if latest.status is AgreementStatus.DECLINED:
        return CampaignState.DECLINED
    if latest.status is AgreementStatus.AWAITING_SIGNATURE and any(
            e.type is EventType.VIEWED for e in await events_of(session, org, latest)):
        return CampaignState.VIEWED
    return CampaignState.PENDING
