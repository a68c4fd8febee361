"""Appending an agreement's events: numbered in order per agreement, with who, when, from where and how.

Numbers are taken under a lock on the agreement's row (``FOR UPDATE``; SQLite serialises writers anyway), so two
requests appending at once cannot both take the same number.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.actors import Actor
from portal.agreements.models import Agreement, AgreementEvent, EventType
from portal.db import utcnow
from portal.tenancy import scoped


@dataclass(frozen=True)
class Origin:
    """Where a request came from and how its user had logged in (recorded with every step)."""

    ip: str = ""
    user_agent: str = ""
    auth_method: str = ""  # "password", "password+totp" or "sso"; "" for the system

    @property
    def assurance(self) -> str:
        return ASSURANCE.get(self.auth_method, "none (the portal itself)")


ASSURANCE = {
    "password": "one factor: password",
    "password+totp": "two factors: password and a one-time code (TOTP)",
    "sso": "the client's own identity provider (single sign-on)",
}


async def append(session: AsyncSession, org: Organisation, agreement: Agreement, *, type: EventType, actor: Actor,
                 origin: Origin, data: dict[str, Any] | None = None, at: dt.datetime | None = None) -> AgreementEvent:
    """Add the next numbered event of ``agreement`` (``at``: when it happened, for a job acting at its own time)."""
    await session.execute(select(Agreement.id).where(Agreement.id == agreement.id).with_for_update())
    last = await session.scalar(scoped(select(func.coalesce(func.max(AgreementEvent.seq), 0))
                                       .where(AgreementEvent.agreement_id == agreement.id), AgreementEvent, org))
    row = AgreementEvent(id=uuid.uuid4(), org_id=agreement.org_id, agreement_id=agreement.id, seq=int(last or 0) + 1,
                         type=type, at=at or utcnow(), actor=actor.label, user_id=actor.user_id, ip=origin.ip[:64],
                         user_agent=origin.user_agent[:300], auth_method=origin.auth_method, data=data or {})
    session.add(row)
    await session.flush()
    return row


async def events_of(session: AsyncSession, org: Organisation, agreement: Agreement) -> list[AgreementEvent]:
    return list((await session.execute(scoped(
        select(AgreementEvent).where(AgreementEvent.agreement_id == agreement.id).order_by(AgreementEvent.seq),
        AgreementEvent, org))).scalars())
