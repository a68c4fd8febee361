"""The incident register (vendor security and owners): opening an incident, choosing the affected clients, closing.

Invariants:
- an incident cannot exist without the time the vendor became aware of it and a contact point (legal requirement
  41); detection and awareness cannot lie in the future, and an occurrence, when known, is not after detection;
- an incident from a sub-processor names it and records when it told the vendor (requirement 49);
- closing needs a written rationale, and a closed incident stays on record and is never reopened (requirement 51);
- affected clients are client organisations: every one with an agreement in force, any chosen by name, those for
  whom a sub-processor is in force, or those whose agreement names a kind of data; adding one twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import OrgKind, Permission
from portal.actors import Actor
from portal.agreements.service import active_agreement, all_active
from portal.breaches.models import AffectedClient, Closure, Incident, IncidentStatus, Nature
from portal.db import utcnow
from portal.errors import Conflict, InvalidInput, NotFound
from portal.subprocessors import client_view

SOURCES = {"own": "Our own systems", "subprocessor": "A sub-processor"}


@dataclass(frozen=True)
class IncidentInput:
    title: str
    aware_at: str  # "YYYY-MM-DDTHH:MM", UTC (what a datetime-local field sends)
    detected_at: str
    occurred_at: str  # may be empty: not known
    natures: tuple[str, ...]
    summary: str
    source: str
    subprocessor_name: str
    subprocessor_notified_at: str
    contact_point: str
    internal_notes: str = ""


def parse_time(raw: str) -> dt.datetime | None:
    """A UTC time typed as ``YYYY-MM-DDTHH:MM`` (or with seconds, or ISO with an offset); None when malformed."""
    text = raw.strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _time(raw: str, name: str, label: str, errors: dict[str, str], *, required: bool,
          now: dt.datetime) -> dt.datetime | None:
    if not raw.strip():
        if required:
            errors[name] = f"{label} is required (UTC, YYYY-MM-DD HH:MM)."
        return None
    value = parse_time(raw)
    if value is None:
        errors[name] = f"Enter {label.lower()} as a date and time (UTC), e.g. 2026-11-30T14:05."
    elif value > now + dt.timedelta(minutes=5):
        errors[name] = f"{label} cannot be in the future."
    return value


def _checked(data: IncidentInput, now: dt.datetime) -> dict[str, object]:
    errors: dict[str, str] = {}
    title, summary, contact = data.title.strip(), data.summary.strip(), data.contact_point.strip()
    if not title:
        errors["title"] = "Give the incident a short title."
    elif len(title) > 200:
        errors["title"] = "The title is longer than 200 characters."
    aware = _time(data.aware_at, "aware_at", "Awareness time", errors, required=True, now=now)
    detected = _time(data.detected_at, "detected_at", "Detection time", errors, required=True, now=now)
    occurred = _time(data.occurred_at, "occurred_at", "Occurrence time", errors, required=False, now=now)
    if occurred and detected and occurred > detected and "occurred_at" not in errors:
        errors["occurred_at"] = "The breach cannot have occurred after it was detected."
    try:
        natures = sorted({Nature(n).value for n in data.natures})
    except ValueError:
        natures = []
    if not natures:
        errors["natures"] = "Choose the nature of the breach: confidentiality, integrity and/or availability."
    if not summary:
        errors["summary"] = "Describe what happened, as the affected clients will read it."
    if not contact:
        errors["contact_point"] = "Name the contact point clients reach for information (requirement of Art. 33(3))."
    elif len(contact) > 500:
        errors["contact_point"] = "The contact point is longer than 500 characters."
    if data.source not in SOURCES:
        errors["source"] = "Say whether it happened in our own systems or at a sub-processor."
    sub_name, sub_told = data.subprocessor_name.strip(), None
    if data.source == "subprocessor":
        if not sub_name:
            errors["subprocessor_name"] = "Name the sub-processor where it happened."
        sub_told = _time(data.subprocessor_notified_at, "subprocessor_notified_at", "The time the sub-processor "
                         "told us", errors, required=True, now=now)
    if errors:
        raise InvalidInput("Nothing was saved. " + " ".join(errors.values()), fields=errors)
    return {"title": title, "aware_at": aware, "detected_at": detected, "occurred_at": occurred,
            "natures": natures, "summary": summary, "source": data.source,
            "subprocessor_name": sub_name if data.source == "subprocessor" else "",
            "subprocessor_notified_at": sub_told, "contact_point": contact,
            "internal_notes": data.internal_notes.strip()}


async def _next_reference(session: AsyncSession, now: dt.datetime) -> str:
    prefix = f"INC-{now:%Y}-"
    count = await session.scalar(select(func.count()).select_from(Incident)
                                 .where(Incident.reference.like(f"{prefix}%")))
    return f"{prefix}{int(count or 0) + 1:04d}"


async def open_incident(session: AsyncSession, *, actor: Actor, data: IncidentInput) -> Incident:
    """Record a security incident the vendor became aware of."""
    actor.require_vendor(Permission.MANAGE_INCIDENTS)
    now = utcnow()
    values = _checked(data, now)
    incident = Incident(id=uuid.uuid4(), reference=await _next_reference(session, now), created_by=actor.label,
                        **values)
    session.add(incident)
    await session.flush()
    await audit.record(session, actor=actor, tag="incident:opened", subject=incident, data={
        "reference": incident.reference, "aware_at": incident.aware_at.isoformat(), "natures": incident.natures,
        "source": incident.source, "subprocessor": incident.subprocessor_name})
    return incident


async def incident_of(session: AsyncSession, *, actor: Actor, incident_id: uuid.UUID | str) -> Incident:
    """One incident, for vendor staff (404 for anyone else)."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    try:
        key = incident_id if isinstance(incident_id, uuid.UUID) else uuid.UUID(str(incident_id))
    except ValueError:
        raise NotFound() from None
    found = await session.get(Incident, key)
    if found is None:
        raise NotFound()
    return found


async def incidents(session: AsyncSession, *, actor: Actor) -> list[Incident]:
    """Every incident, open ones first, newest first."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    return list((await session.execute(select(Incident).order_by(
        (Incident.status == IncidentStatus.OPEN.value).desc(), Incident.aware_at.desc()))).scalars())


# ---------------------------------------------------------------- affected clients

async def clients_with_agreements(session: AsyncSession) -> list[Organisation]:
    """Client organisations with an agreement in force: who 'all clients' means."""
    return sorted((agreement.org for agreement in await all_active(session)), key=lambda org: org.name)


async def affected(session: AsyncSession, incident: Incident) -> list[AffectedClient]:
    return list((await session.execute(
        select(AffectedClient).where(AffectedClient.incident_id == incident.id)
        .options(joinedload(AffectedClient.org))
        .join(Organisation, Organisation.id == AffectedClient.org_id)  # tenancy: a join to its owner, for the order
        .order_by(Organisation.name))).scalars())


@dataclass(frozen=True)
class Selection:
    """Which clients an incident affects: every client with an agreement in force, those chosen by name, those for
    whom a sub-processor is in force, and/or those whose agreement's Annex II names a kind of data."""

    everyone: bool = False
    org_ids: tuple[str, ...] = ()
    subprocessor: str = ""  # an entry's name in the list in force
    data_term: str = ""  # matched in the agreement's categories of data subjects, personal data and sensitive data

    @property
    def empty(self) -> bool:
        return not (self.everyone or self.org_ids or self.subprocessor.strip() or self.data_term.strip())


DATA_FIELDS = ("processing.personal_data", "processing.sensitive_data", "processing.data_subjects")


async def _uses(session: AsyncSession, actor: Actor, org: Organisation, subprocessor: str,
                default_notice_days: int) -> bool:
    view = await client_view.build(session, actor=actor, org=org, default_notice_days=default_notice_days)
    return any(item.entry.get("name") == subprocessor and item.in_force for item in view.entries)


async def _names_data(session: AsyncSession, org: Organisation, term: str) -> bool:
    agreement = await active_agreement(session, org)
    details = agreement.details if agreement is not None else {}
    return any(term.casefold() in str(details.get(name, "")).casefold() for name in DATA_FIELDS)


async def _chosen(session: AsyncSession, actor: Actor, selection: Selection,
                  default_notice_days: int) -> list[tuple[Organisation, str]]:
    candidates = await clients_with_agreements(session)
    chosen: dict[uuid.UUID, tuple[Organisation, str]] = {}
    if selection.everyone:
        chosen |= {org.id: (org, "all clients with an agreement in force") for org in candidates}
    if selection.org_ids:
        wanted = {_uuid(raw) for raw in selection.org_ids if raw}
        # By name, any client may be chosen, also one whose agreement is not (or no longer) in force.
        named = list((await session.execute(select(Organisation).where(
            Organisation.kind == OrgKind.CLIENT, Organisation.id.in_(sorted(wanted))))).scalars())
        if len(named) != len(wanted):
            raise InvalidInput("Choose the affected clients from the list.", fields={"org_ids": "Unknown client."})
        chosen |= {org.id: (org, "chosen by vendor security") for org in named if org.id not in chosen}
    if name := selection.subprocessor.strip():
        for org in candidates:
            if org.id not in chosen and await _uses(session, actor, org, name, default_notice_days):
                chosen[org.id] = (org, f"{name} processes its data")
    if term := selection.data_term.strip():
        for org in candidates:
            if org.id not in chosen and await _names_data(session, org, term):
                chosen[org.id] = (org, f"its agreement names '{term}' among the data processed")
    return list(chosen.values())


async def add_clients(session: AsyncSession, *, actor: Actor, incident: Incident, selection: Selection,
                      default_notice_days: int) -> list[AffectedClient]:
    """Mark clients as affected, each with the reason it was chosen; adding one twice changes nothing."""
    actor.require_vendor(Permission.MANAGE_INCIDENTS)
    if incident.status is IncidentStatus.CLOSED:
        raise Conflict("The incident is closed.")
    if selection.empty:
        raise InvalidInput("Choose the affected clients: all, by name, by sub-processor or by kind of data.",
                           fields={"org_ids": "Choose clients."})
    known = {row.org_id for row in await affected(session, incident)}
    added = []
    for org, reason in await _chosen(session, actor, selection, default_notice_days):
        if org.id in known:
            continue
        row = AffectedClient(id=uuid.uuid4(), incident_id=incident.id, org_id=org.id, reason=reason,
                             added_by=actor.label)
        session.add(row)
        added.append(row)
    await session.flush()
    if added:
        await audit.record(session, actor=actor, tag="incident:clients_added", subject=incident,
                           data={"clients": {str(row.org_id): row.reason for row in added}})
    return added


def _uuid(raw: str) -> uuid.UUID:
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidInput("Choose the affected clients from the list.", fields={"org_ids": "Unknown client."}) \
            from None


# ---------------------------------------------------------------- closing

async def close_incident(session: AsyncSession, *, actor: Actor, incident: Incident, closure: str,
                         rationale: str) -> Incident:
    """Close an incident with how it ended and why; it stays on record."""
    actor.require_vendor(Permission.MANAGE_INCIDENTS)
    if incident.status is IncidentStatus.CLOSED:
        raise Conflict("The incident is already closed.")
    errors: dict[str, str] = {}
    try:
        kind = Closure(closure)
    except ValueError:
        errors["closure"] = "Choose how the incident ended."
        kind = Closure.BREACH_HANDLED
    if not rationale.strip():
        errors["closure_rationale"] = "Write why the incident can be closed: it is kept as the record of the decision."
    if errors:
        raise InvalidInput("The incident stays open. " + " ".join(errors.values()), fields=errors)
    incident.status, incident.closure = IncidentStatus.CLOSED, kind
    incident.closure_rationale, incident.closed_at, incident.closed_by = rationale.strip(), utcnow(), actor.label
    await session.flush()
    await audit.record(session, actor=actor, tag="incident:closed", subject=incident,
                       data={"closure": kind.value, "rationale": incident.closure_rationale})
    return incident
