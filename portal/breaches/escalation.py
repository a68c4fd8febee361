"""Escalation flags for the vendor dashboard: breach notices that reached nobody in time, and affected clients
without a security contact (legal requirement 48: a notice has a successful delivery or an escalation flag).

Invariants:
- only open incidents are flagged; a closed incident's record stays as it is, flags or not;
- a notice is flagged once ``PORTAL_BREACH_ESCALATION_MINUTES`` have passed since it was sent and none of its
  deliveries succeeded (or it had none); an acknowledgement, in the portal or by a delivery's link, proves that the
  client received it, so an acknowledged notice is not flagged either;
- a client counts as having a security contact only through an active (not disabled) member holding the role:
  without one its breach notices go to its admins instead;
- these are vendor-wide reads for the vendor's staff: the caller shows them to vendor staff only.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.accounts.roles import Role
from portal.breaches.models import AffectedClient, BreachNotice, Incident, IncidentStatus
from portal.notifications.models import Delivery
from portal.settings import Settings


class FlagKind(enum.StrEnum):
    UNDELIVERED = "undelivered"  # a breach notice with no successful delivery after the escalation time
    NO_SECURITY_CONTACT = "no_security_contact"  # an affected client with nobody holding the role


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    incident_id: uuid.UUID
    incident_reference: str
    org: Organisation
    seq: int | None = None  # the notice's number for that client (undelivered only)
    minutes: int | None = None  # whole minutes since the notice was sent (undelivered only)
    notice_id: uuid.UUID | None = None  # its notice in the notification system, for the delivery evidence

    @property
    def client_name(self) -> str:
        return self.org.name


async def flags(session: AsyncSession, *, now: dt.datetime, settings: Settings) -> list[Flag]:
    """Undelivered breach notices of open incidents older than the escalation time, then affected clients of open
    incidents without a security contact."""
    return [*await _undelivered(session, now=now, minutes=settings.breach_escalation_minutes),
            *await _without_security_contact(session)]


async def _undelivered(session: AsyncSession, *, now: dt.datetime, minutes: int) -> list[Flag]:
    reached = (select(Delivery.id).where(Delivery.notice_id == BreachNotice.notice_id,
                                         or_(Delivery.sent_at.is_not(None), Delivery.acknowledged_at.is_not(None)))
               .exists())
    rows = (await session.execute(
        select(BreachNotice, Incident, Organisation)
        .join(Incident, Incident.id == BreachNotice.incident_id)
        .join(Organisation, Organisation.id == BreachNotice.org_id)  # tenancy: each notice with its own client
        .where(Incident.status == IncidentStatus.OPEN.value,
               BreachNotice.notified_at <= now - dt.timedelta(minutes=minutes),
               BreachNotice.acknowledged_at.is_(None), ~reached)
        .order_by(Incident.aware_at, Incident.reference, func.lower(Organisation.name), BreachNotice.seq)
    )).all()
    return [Flag(FlagKind.UNDELIVERED, incident.id, incident.reference, org, seq=notice.seq,
                 minutes=int((now - notice.notified_at).total_seconds() // 60), notice_id=notice.notice_id)
            for notice, incident, org in rows]


async def _without_security_contact(session: AsyncSession) -> list[Flag]:
    covered = (select(Membership.org_id).join(MembershipRole, MembershipRole.membership_id == Membership.id)
               .join(User, User.id == Membership.user_id)
               .where(MembershipRole.role == Role.SECURITY_CONTACT, User.disabled_at.is_(None)))
    rows = (await session.execute(
        select(Incident, Organisation)
        .join(AffectedClient, AffectedClient.incident_id == Incident.id)
        .join(Organisation, Organisation.id == AffectedClient.org_id)  # tenancy: each affected row with its client
        .where(Incident.status == IncidentStatus.OPEN.value,
               AffectedClient.org_id.not_in(covered))  # tenancy: vendor-wide, clients nobody covers as contact
        .order_by(Incident.aware_at, Incident.reference, func.lower(Organisation.name))
    )).all()
    return [Flag(FlagKind.NO_SECURITY_CONTACT, incident.id, incident.reference, org) for incident, org in rows]
