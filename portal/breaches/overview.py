"""What the vendor's incident page shows per affected client: its notices, their receipts and its clock."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements.service import active_agreement
from portal.breaches.clocks import ClientClock, client_clock
from portal.breaches.incidents import affected
from portal.breaches.models import AffectedClient, BreachNotice, Incident
from portal.breaches.notices import Receipt, notices_to, receipts
from portal.settings import Settings


@dataclass(frozen=True)
class ClientRow:
    org: Organisation
    affected: AffectedClient
    notices: list[BreachNotice]
    receipts: dict[uuid.UUID, Receipt]
    clock: ClientClock

    @property
    def last(self) -> BreachNotice | None:
        return self.notices[-1] if self.notices else None

    @property
    def unreached(self) -> bool:
        """Notified, but no delivery of its latest notice succeeded yet."""
        last = self.last
        return last is not None and self.receipts[last.id].delivered_at is None


async def overview(session: AsyncSession, *, actor: Actor, incident: Incident, settings: Settings,
                   now: dt.datetime) -> list[ClientRow]:
    """Every affected client of ``incident`` with its notices, receipts and clock."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    rows = []
    for row in await affected(session, incident):
        notices = await notices_to(session, row.org, incident)
        agreement = await active_agreement(session, row.org)
        clock = client_clock(incident, notices, agreement, default_hours=settings.breach_target_hours, now=now)
        rows.append(ClientRow(row.org, row, notices, await receipts(session, notices), clock))
    return rows
