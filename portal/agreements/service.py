"""Recording and ending agreements, and the terms the sub-processor workflow reads from them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements import events
from portal.agreements.models import Agreement, AgreementSource, AgreementStatus, Authorisation, EventType
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.tenancy import get_scoped, scoped

MAX_NOTICE_DAYS = 365


@dataclass(frozen=True)
class AgreementInput:
    reference: str
    signed_on: str
    authorisation: str
    notice_days: str  # empty: the portal's default


def _checked(data: AgreementInput) -> tuple[str, dt.date, Authorisation, int | None]:
    errors: dict[str, str] = {}
    reference = data.reference.strip()
    if not reference:
        errors["reference"] = "Give the agreement a reference, e.g. 'DPA 2025-03 (signed PDF)'."
    elif len(reference) > 200:
        errors["reference"] = "The reference is longer than 200 characters."
    signed_on = None
    try:
        signed_on = dt.date.fromisoformat(data.signed_on.strip())
        if signed_on > utcnow().date():
            errors["signed_on"] = "The signature date cannot be in the future."
    except ValueError:
        errors["signed_on"] = "Enter the signature date as YYYY-MM-DD."
    try:
        authorisation = Authorisation(data.authorisation)
    except ValueError:
        errors["authorisation"] = "Choose general or specific authorisation."
        authorisation = Authorisation.GENERAL
    notice_days: int | None = None
    if data.notice_days.strip():
        try:
            notice_days = int(data.notice_days.strip())
            if not 1 <= notice_days <= MAX_NOTICE_DAYS:
                raise ValueError
        except ValueError:
            errors["notice_days"] = f"Enter a number of days from 1 to {MAX_NOTICE_DAYS}, or leave it empty."
    if errors:
        raise InvalidInput(next(iter(errors.values())), fields=errors)
    assert signed_on is not None
    return reference, signed_on, authorisation, notice_days


async def record_agreement(session: AsyncSession, *, actor: Actor, org: Organisation,
                           data: AgreementInput) -> Agreement:
    """Record an agreement signed outside the portal; it replaces the client's active one, if any."""
    actor.require_vendor(Permission.MANAGE_AGREEMENTS)
    if org.is_vendor:
        raise NotFound()
    reference, signed_on, authorisation, notice_days = _checked(data)
    previous = await active_agreement(session, org)
    if previous is not None:
        await _end(session, actor=actor, org=org, agreement=previous, reason=f"superseded by {reference}",
                   status=AgreementStatus.SUPERSEDED)
    agreement = Agreement(org_id=org.id, reference=reference, signed_on=signed_on, source=AgreementSource.RECORDED,
                          subprocessor_authorisation=authorisation, notice_days=notice_days,
                          status=AgreementStatus.EXECUTED, recorded_by=actor.label)
    session.add(agreement)
    await session.flush()
    await audit.record(session, actor=actor, tag="agreement:recorded", subject=agreement, org_id=org.id,
                       data={"reference": reference, "signed_on": signed_on.isoformat(),
                             "authorisation": authorisation.value, "notice_days": notice_days})
    return agreement


async def _end(session: AsyncSession, *, actor: Actor, org: Organisation, agreement: Agreement, reason: str,
               status: AgreementStatus = AgreementStatus.TERMINATED) -> None:
    agreement.status = status
    agreement.ended_at = utcnow()
    agreement.end_reason = reason[:500]
    await session.flush()
    if agreement.in_portal:  # its own history (and any later evidence) shows how it ended
        kind = EventType.SUPERSEDED if status is AgreementStatus.SUPERSEDED else EventType.TERMINATED
        await events.append(session, org, agreement, type=kind, actor=actor, origin=events.Origin(ip=actor.ip),
                            data={"reason": agreement.end_reason})
    await audit.record(session, actor=actor, tag="agreement:ended", subject=agreement, org_id=agreement.org_id,
                       data={"reference": agreement.reference, "reason": agreement.end_reason})


async def end_agreement(session: AsyncSession, *, actor: Actor, org: Organisation, agreement_id: str,
                        reason: str) -> Agreement:
    """End a client's active agreement (vendor staff), with the reason kept."""
    actor.require_vendor(Permission.MANAGE_AGREEMENTS)
    agreement = await get_scoped(session, Agreement, agreement_id, org)
    if agreement.status is not AgreementStatus.EXECUTED:
        raise InvalidInput("This agreement has already ended.")
    if not reason.strip():
        raise InvalidInput("Say why the agreement ends.", fields={"reason": "Required."})
    await _end(session, actor=actor, org=org, agreement=agreement, reason=reason.strip())
    return agreement


async def end_for_termination(session: AsyncSession, *, actor: Actor, org: Organisation, reason: str) -> None:
    """End ``org``'s active agreement because an objection was resolved by terminating it (if one is active)."""
    agreement = await active_agreement(session, org)
    if agreement is not None:
        await _end(session, actor=actor, org=org, agreement=agreement, reason=reason)


async def active_agreement(session: AsyncSession, org: Organisation) -> Agreement | None:
    return (await session.execute(scoped(
        select(Agreement).where(Agreement.status == AgreementStatus.EXECUTED), Agreement, org
    ))).scalar_one_or_none()


async def agreements_of(session: AsyncSession, org: Organisation) -> list[Agreement]:
    """The client's agreements, newest first (the active one and its history)."""
    rows = (await session.execute(scoped(
        select(Agreement).order_by(Agreement.created_at.desc()), Agreement, org
    ))).scalars().all()
    return list(rows)


async def all_active(session: AsyncSession) -> list[Agreement]:
    """Every client's active agreement with its organisation (who a sub-processor change must reach)."""
    rows = (await session.execute(
        select(Agreement).where(Agreement.status == AgreementStatus.EXECUTED).options(joinedload(Agreement.org))
        .order_by(Agreement.created_at)
    )).scalars().all()
    return list(rows)
