"""Breach notices: one per affected client with only that client's figures, sent through the notification system to
its security contacts (by email and webhook) and shown in its portal, and acknowledged by the client.

Invariants:
- a notice goes to one affected client of an open incident, and its content is that client's alone (legal
  requirement 47): no other client's name or figures is in it, in the email, the webhook or the portal;
- the payload carries ``notified_at`` and the 72-hour reference (requirement 45); the numbers run per client, and
  each notice after the first records what changed since the previous one (requirement 46);
- an incident from a sub-processor names it in every notice (requirement 49);
- an acknowledgement is recorded once per notice for the client (the first counts), and once per delivery.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.breaches import content as notice_content
from portal.breaches.incidents import affected
from portal.breaches.models import UNKNOWN, AffectedClient, BreachNotice, Incident, IncidentStatus, Phase
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput, NotFound
from portal.notifications import catalog
from portal.notifications.evidence import acknowledge
from portal.notifications.models import Delivery
from portal.notifications.service import notify
from portal.settings import Settings
from portal.tenancy import get_scoped, scoped


def client_link(settings: Settings, org: Organisation, incident: Incident) -> str:
    return f"{settings.base_url}/orgs/{org.id}/incidents/{incident.id}"


async def notices_to(session: AsyncSession, org: Organisation, incident: Incident) -> list[BreachNotice]:
    """The notices of ``incident`` to ``org``, in order."""
    return list((await session.execute(scoped(
        select(BreachNotice).where(BreachNotice.incident_id == incident.id).order_by(BreachNotice.seq),
        BreachNotice, org))).scalars())


def _nature_text(incident: Incident, written: str) -> str:
    """The nature as written, naming the sub-processor where it happened (once: an update starts from the text of
    the previous notice, which names it already)."""
    note = f"(The breach occurred at our sub-processor {incident.subprocessor_name}.)"
    if incident.from_subprocessor and note not in written:
        return f"{written} {note}"
    return written


async def send_notice(session: AsyncSession, *, actor: Actor, incident: Incident, org: Organisation, phase: str,
                      raw: dict[str, str], settings: Settings) -> BreachNotice:
    """Send ``org`` a notice of ``incident`` with its own figures; the content follows the rules of ``content``."""
    actor.require_vendor(Permission.MANAGE_INCIDENTS)
    if incident.status is IncidentStatus.CLOSED:
        raise Conflict("The incident is closed; no more notices are sent for it.")
    affected = (await session.execute(scoped(select(AffectedClient.id).where(
        AffectedClient.incident_id == incident.id), AffectedClient, org))).first()
    if affected is None:
        raise NotFound()
    try:
        stage = Phase(phase)
    except ValueError:
        raise InvalidInput("Choose the kind of notice: initial, interim or final.", fields={"phase": "Choose."}) \
            from None
    values = notice_content.clean(raw, phase=stage)
    values["nature"] = _nature_text(incident, values["nature"])
    earlier = await notices_to(session, org, incident)
    if stage is Phase.INITIAL and earlier:
        raise InvalidInput("This client has had its initial notice; send an interim or final notice.",
                           fields={"phase": "Already notified."})
    changed = notice_content.changes(earlier[-1].content if earlier else None, values)
    if earlier and not changed:
        raise InvalidInput("Nothing changed since the previous notice to this client; there is nothing to send.")
    now = utcnow()
    notice = BreachNotice(id=uuid.uuid4(), org_id=org.id, incident_id=incident.id, seq=len(earlier) + 1, phase=stage,
                          content=values, changes=changed, notified_at=now, created_by=actor.label)
    session.add(notice)
    await session.flush()
    [sent] = await notify(session, actor=actor, orgs=[org], subject=notice, content=catalog.breach_notice(
        incident=incident.reference, aware_at=incident.aware_at, nature=values["nature"],
        categories=values["categories"], approximate_numbers=f"data subjects: {values['approximate_subjects']}; "
                                                             f"records: {values['approximate_records']}",
        likely_consequences=values["likely_consequences"], measures=values["measures"],
        contact_point=values["contact_point"], link=client_link(settings, org, incident), phase=stage.value,
        approximate_subjects=values["approximate_subjects"], approximate_records=values["approximate_records"],
        notified_at=now, changed_fields=[notice_content.label_of(name) for name in changed] if earlier else [],
        art34_draft=values.get(notice_content.ART34_DRAFT, "")))
    notice.notice_id = sent.id
    await session.flush()
    await audit.record(session, actor=actor, tag="breach_notice:sent", subject=notice, org_id=org.id, data={
        "incident": incident.reference, "phase": stage.value, "seq": notice.seq, "changed": sorted(changed)})
    return notice


def parse_figures(raw: str, names: dict[str, Organisation]) -> dict[uuid.UUID, tuple[str, str]]:
    """Per-client numbers typed one client a line, ``Client name | data subjects | records``."""
    figures: dict[uuid.UUID, tuple[str, str]] = {}
    by_name = {name.casefold(): org for name, org in names.items()}
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")]
        org = by_name.get(parts[0].casefold()) if parts else None
        if len(parts) != 3 or org is None or not parts[1] or not parts[2]:
            message = (f"Line {number} should read 'Client name | data subjects | records' with the name of an "
                       "affected client not notified yet.")
            raise InvalidInput(message, fields={"figures": message})
        figures[org.id] = (parts[1], parts[2])
    return figures


async def notify_all(session: AsyncSession, *, actor: Actor, incident: Incident, raw: dict[str, str],
                     figures_text: str, settings: Settings) -> list[BreachNotice]:
    """The initial notice to every affected client not notified yet, in one go: the same text for all, each with
    its own numbers (typed per client, else 'not yet known'). All of them are sent, or none."""
    actor.require_vendor(Permission.MANAGE_INCIDENTS)
    waiting = [row.org for row in await affected(session, incident)
               if not await notices_to(session, row.org, incident)]
    if not waiting:
        raise InvalidInput("Every affected client has had its initial notice; send updates client by client.")
    figures = parse_figures(figures_text, {org.name: org for org in waiting})
    sent = []
    for org in waiting:
        subjects, records = figures.get(org.id, (UNKNOWN, UNKNOWN))
        sent.append(await send_notice(session, actor=actor, incident=incident, org=org, phase=Phase.INITIAL.value,
                                      settings=settings, raw={**raw, "approximate_subjects": subjects,
                                                              "approximate_records": records}))
    return sent


# ---------------------------------------------------------------- what clients see and do

async def client_incidents(session: AsyncSession, *, actor: Actor, org: Organisation) -> list[Incident]:
    """The incidents ``org`` has been notified of, newest first (its admins and security contacts; vendor staff)."""
    _require_reader(actor, org)
    ids = select(BreachNotice.incident_id).distinct()
    rows = await session.execute(select(Incident).where(Incident.id.in_(scoped(ids, BreachNotice, org)))
                                 .order_by(Incident.aware_at.desc()))
    return list(rows.scalars())


async def client_incident(session: AsyncSession, *, actor: Actor, org: Organisation,
                          incident_id: str) -> tuple[Incident, list[BreachNotice]]:
    """One incident as ``org`` sees it: only once it has been notified, and only its own notices."""
    _require_reader(actor, org)
    try:
        key = uuid.UUID(incident_id)
    except ValueError:
        raise NotFound() from None
    incident = await session.get(Incident, key)
    notices = await notices_to(session, org, incident) if incident is not None else []
    if incident is None or not notices:
        raise NotFound()
    return incident, notices


def _require_reader(actor: Actor, org: Organisation) -> None:
    if actor.org is None or (actor.org.id != org.id and not actor.org.is_vendor):
        raise NotFound()
    actor.require(Permission.VIEW_CLIENTS if actor.org.is_vendor else Permission.VIEW_INCIDENTS)


async def acknowledge_notice(session: AsyncSession, *, actor: Actor, org: Organisation,
                             notice_id: str) -> BreachNotice:
    """A client's admin or security contact confirms that the client received the notice (first time counts); their
    own email delivery of it is acknowledged too."""
    if actor.org is None or actor.org.id != org.id:
        raise NotFound()
    actor.require(Permission.VIEW_INCIDENTS)
    notice = await get_scoped(session, BreachNotice, notice_id, org)
    who = f"{actor.user.name} ({actor.user.email})" if actor.user is not None else actor.label
    first = (await session.execute(
        update(BreachNotice).where(BreachNotice.id == notice.id, BreachNotice.acknowledged_at.is_(None))
        .values(acknowledged_at=utcnow(), acknowledged_by=who).execution_options(synchronize_session=False)
    )).rowcount  # type: ignore[attr-defined]
    await session.refresh(notice, ["acknowledged_at", "acknowledged_by"])
    if notice.notice_id is not None and actor.user_id is not None:
        own = (await session.execute(scoped(select(Delivery).where(
            Delivery.notice_id == notice.notice_id, Delivery.user_id == actor.user_id), Delivery, org))).scalars()
        for delivery in own:
            await acknowledge(session, actor=actor, delivery=delivery, by=f"{who} (in the portal)")
    if first:
        await audit.record(session, actor=actor, tag="breach_notice:acknowledged", subject=notice, org_id=org.id,
                           data={"seq": notice.seq, "by": who})
    return notice


@dataclass(frozen=True)
class Receipt:
    """How far a notice got: when its first delivery succeeded and when the client first acknowledged it."""

    delivered_at: dt.datetime | None
    acknowledged_at: dt.datetime | None


async def receipts(session: AsyncSession, notices: list[BreachNotice]) -> dict[uuid.UUID, Receipt]:
    """Per breach notice: the first successful delivery and the first acknowledgement (portal, link or API)."""
    ids = [n.notice_id for n in notices if n.notice_id is not None]
    found: dict[uuid.UUID, tuple[dt.datetime | None, dt.datetime | None]] = {}
    if ids:
        rows = await session.execute(select(Delivery.notice_id, func.min(Delivery.sent_at),
                                            func.min(Delivery.acknowledged_at))
                                     .where(Delivery.notice_id.in_(ids)).group_by(Delivery.notice_id))
        found = {notice_id: (sent, acked) for notice_id, sent, acked in rows.all()}
    out: dict[uuid.UUID, Receipt] = {}
    for notice in notices:
        sent, acked = found.get(notice.notice_id, (None, None)) if notice.notice_id else (None, None)
        times = [t for t in (acked, notice.acknowledged_at) if t is not None]
        out[notice.id] = Receipt(sent, min(times) if times else None)
    return out
