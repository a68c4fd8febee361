"""Clients' answers to sub-processor changes: approval, objection, the vendor's resolution, and the deadline job.

Invariants (legal requirements 33, 37, 38):
- a client objects or approves only before its deadline; afterwards it is told when the window closed;
- an objection needs a reason; while it is open the change is not in force for that client;
- closing an objection needs a resolution and a note; the client is notified of it;
- at the deadline, silence is ``deemed_authorised`` under general authorisation and ``not_authorised`` under
  specific authorisation; the job records each flip with its time and an audit event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import Authorisation
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.notifications import catalog
from portal.notifications.service import notify
from portal.subprocessors.models import AuthorisationState, ChangeAuthorisation, Objection, Resolution
from portal.tenancy import get_scoped, scoped

MAX_REASON = 5000
SYSTEM_DEADLINE = "system:deadline"


def _require_client_responder(actor: Actor, org: Organisation) -> None:
    if actor.org is None or actor.org.id != org.id or org.is_vendor:
        raise NotFound()
    actor.require(Permission.RESPOND_TO_CHANGES)


async def _authorisation(session: AsyncSession, org: Organisation, authorisation_id: str) -> ChangeAuthorisation:
    row = await get_scoped(session, ChangeAuthorisation, authorisation_id, org,
                           joinedload(ChangeAuthorisation.version), selectinload(ChangeAuthorisation.objections))
    # The objections decide what may happen next: read them afresh, even when the row was loaded before.
    await session.refresh(row, attribute_names=["objections"])
    return row


def silence_outcome(row: ChangeAuthorisation) -> AuthorisationState:
    """What silence by the deadline means for ``row``: consent under general authorisation, none under specific."""
    return (AuthorisationState.DEEMED_AUTHORISED if row.authorisation is Authorisation.GENERAL
            else AuthorisationState.NOT_AUTHORISED)


def _check_window(row: ChangeAuthorisation, now: dt.datetime, verb: str) -> None:
    if now >= row.deadline:
        # Until the deadline job has run the row still says pending; tell the client what its silence means.
        state = silence_outcome(row) if row.state is AuthorisationState.PENDING else row.state
        raise InvalidInput(f"The period to {verb} the change to {row.entry_name} ended on "
                           f"{row.deadline:%Y-%m-%d %H:%M} UTC; it is now {state.label.lower()}.")


async def object_to(session: AsyncSession, *, actor: Actor, org: Organisation, authorisation_id: str,
                    reason: str, now: dt.datetime | None = None) -> Objection:
    """Lodge an objection to one change (client admin or privacy contact, before the deadline)."""
    _require_client_responder(actor, org)
    now = now or utcnow()
    row = await _authorisation(session, org, authorisation_id)
    _check_window(row, now, "object to")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Give the grounds of your objection.", fields={"reason": "Required."})
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"The reason is longer than {MAX_REASON} characters.", fields={"reason": "Too long."})
    if any(o.is_open for o in row.objections):
        raise InvalidInput(f"Your organisation already has an open objection to {row.entry_name}.")
    objection = Objection(org_id=org.id, authorisation_id=row.id, reason=reason, lodged_by=actor.label,
                          lodged_by_email=actor.user.email if actor.user else "", lodged_at=now)
    session.add(objection)
    before = row.state
    row.state, row.decided_at, row.decided_by = AuthorisationState.OBJECTED, now, actor.label
    await session.flush()
    await audit.record(session, actor=actor, tag="subprocessor_objection:lodged", subject=objection, org_id=org.id,
                       data={"version": row.version.number, "entry": row.entry_name, "before": before.value,
                             "reason": reason})
    return objection


async def approve(session: AsyncSession, *, actor: Actor, org: Organisation, authorisation_id: str,
                  now: dt.datetime | None = None) -> ChangeAuthorisation:
    """Approve one change explicitly (what specific authorisation requires; allowed under general too)."""
    _require_client_responder(actor, org)
    now = now or utcnow()
    row = await _authorisation(session, org, authorisation_id)
    _check_window(row, now, "approve")
    if any(o.is_open for o in row.objections):
        raise InvalidInput("Your organisation has an open objection to this change; the vendor resolves it first.")
    if row.state is AuthorisationState.AUTHORISED:
        return row
    before = row.state
    row.state, row.decided_at, row.decided_by = AuthorisationState.AUTHORISED, now, actor.label
    await session.flush()
    await audit.record(session, actor=actor, tag="subprocessor_authorisation:approved", subject=row, org_id=org.id,
                       data={"version": row.version.number, "entry": row.entry_name, "before": before.value})
    return row


async def resolve(session: AsyncSession, *, actor: Actor, org: Organisation, objection_id: str, resolution: str,
                  note: str, base_url: str, now: dt.datetime | None = None) -> Objection:
    """Close an objection with its outcome and a note (vendor legal or owner); the client is notified."""
    actor.require_vendor(Permission.MANAGE_SUBPROCESSORS)
    now = now or utcnow()
    objection = await get_scoped(session, Objection, objection_id, org,
                                 joinedload(Objection.authorisation).joinedload(ChangeAuthorisation.version))
    errors: dict[str, str] = {}
    try:
        outcome = Resolution(resolution)
    except ValueError:
        errors["resolution"] = "Choose how the objection was resolved."
        outcome = Resolution.ACCOMMODATED
    note = note.strip()
    if not note:
        errors["note"] = "Write a note for the client: what was decided and why."
    elif len(note) > MAX_REASON:
        errors["note"] = f"The note is longer than {MAX_REASON} characters."
    if errors:
        raise InvalidInput(next(iter(errors.values())), fields=errors)
    if not objection.is_open:
        raise InvalidInput("This objection is already resolved.")
    row = objection.authorisation
    objection.resolution, objection.resolution_note = outcome, note
    objection.resolved_by, objection.resolved_at, objection.is_open = actor.label, now, False
    if outcome is Resolution.WITHDRAWN:
        row.state, row.decided_at, row.decided_by = AuthorisationState.AUTHORISED, now, actor.label
    if outcome is Resolution.TERMINATED:
        await agreements.end_for_termination(session, actor=actor, org=org,
                                             reason=f"terminated after the objection to {row.entry_name}")
    await session.flush()
    await audit.record(session, actor=actor, tag="subprocessor_objection:resolved", subject=objection, org_id=org.id,
                       data={"version": row.version.number, "entry": row.entry_name, "resolution": outcome.value,
                             "note": note, "state": row.state.value})
    content = catalog.objection_resolved(subprocessor=row.entry_name, resolution=outcome.label, note=note,
                                         link=f"{base_url}/orgs/{org.id}/subprocessors")
    await notify(session, actor=actor, content=content, orgs=[org], subject=objection)
    return objection


# ---------------------------------------------------------------- the deadline job

async def apply_deadlines(session: AsyncSession, *, now: dt.datetime | None = None, limit: int = 500) -> int:
    """Record the outcome of every pending authorisation whose deadline has passed; returns how many.

    Several workers may run this at once: on PostgreSQL the rows are locked with SKIP LOCKED, and the state is
    re-checked, so each flips exactly once."""
    now = now or utcnow()
    statement = (select(ChangeAuthorisation)
                 .where(ChangeAuthorisation.state == AuthorisationState.PENDING, ChangeAuthorisation.deadline <= now)
                 .order_by(ChangeAuthorisation.deadline).limit(limit)
                 .with_for_update(skip_locked=True))
    rows = list((await session.execute(statement)).scalars())
    if not rows:
        return 0
    actor = Actor.system(SYSTEM_DEADLINE)
    events = []
    for row in rows:
        silence = silence_outcome(row)
        row.state, row.decided_at, row.decided_by = silence, now, SYSTEM_DEADLINE
        events.append((row, row.org_id, {"entry": row.entry_name, "state": silence.value,
                                         "deadline": row.deadline.isoformat(),
                                         "authorisation": row.authorisation.value}))
    await session.flush()
    await audit.record_many(session, actor=actor, tag="subprocessor_authorisation:deadline_passed", events=events)
    return len(rows)


# ---------------------------------------------------------------- reading a client's positions and the board

async def authorisations_of(session: AsyncSession, org: Organisation) -> list[ChangeAuthorisation]:
    """The client's authorisation rows with their versions and objections, newest version first."""
    rows = (await session.execute(scoped(
        select(ChangeAuthorisation).options(joinedload(ChangeAuthorisation.version),
                                            selectinload(ChangeAuthorisation.objections))
        .order_by(ChangeAuthorisation.notified_at.desc(), ChangeAuthorisation.entry_name),
        ChangeAuthorisation, org,
    ))).scalars().all()
    return list(rows)


@dataclass(frozen=True)
class BoardRow:
    objection: Objection
    authorisation: ChangeAuthorisation
    org: Organisation


async def objections_board(session: AsyncSession, *, actor: Actor, open_only: bool = True) -> list[BoardRow]:
    """Every client's objections for vendor staff, open ones first, oldest first (the vendor's queue)."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    statement = (select(Objection).options(
        joinedload(Objection.authorisation).joinedload(ChangeAuthorisation.version),
        joinedload(Objection.authorisation).joinedload(ChangeAuthorisation.org))
        .order_by(Objection.is_open.desc(), Objection.lodged_at))
    if open_only:
        statement = statement.where(Objection.is_open.is_(True))
    rows = (await session.execute(statement)).scalars().all()
    return [BoardRow(o, o.authorisation, o.authorisation.org) for o in rows]


async def board_row(session: AsyncSession, *, actor: Actor, org: Organisation, objection_id: str) -> BoardRow:
    """One objection of ``org`` for vendor staff (else 404)."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    objection = await get_scoped(session, Objection, objection_id, org, joinedload(Objection.authorisation).options(
        joinedload(ChangeAuthorisation.version), joinedload(ChangeAuthorisation.org)))
    return BoardRow(objection, objection.authorisation, objection.authorisation.org)


def not_in_force_for(rows: list[ChangeAuthorisation]) -> set[uuid.UUID]:
    """Entry ids with a change the client has not (or not yet) authorised: that change is kept away from its data
    (an objection to a later change of an entry flags the entry too; the rows say which change it is)."""
    return {row.entry_id for row in rows if not row.state.in_force}
