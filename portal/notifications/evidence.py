"""What happened to every notice: the evidence pages, acknowledgements and the vendor dashboard flags.

Invariants:
- vendor staff (``view_clients``) read every notice, public ones included; a client reads only its own
  organisation's notices through ``tenancy.scoped``, and anything else answers 404;
- an acknowledgement is recorded once (the first one counts; repeating it changes nothing), from any state: the
  link or the API call is itself proof that the notice arrived, and it stops further retries;
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from portal import audit
from portal.accounts import service as accounts_service
from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.accounts.roles import Permission, Role
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.notifications.catalog import SPECS, NoticeType
from portal.notifications.models import Delivery, DeliveryStatus, Notice
from portal.notifications.service import delivery_id_from_ack_token
from portal.notifications.subscriptions import REQUIRED_CONTACTS
from portal.tenancy import scoped

PAGE_SIZE = 50
INVALID_ACK_LINK = "This acknowledgement link is not valid. Use the link in the notice you received."


def _uuid(raw: str | uuid.UUID) -> uuid.UUID | None:
    try:
        return raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
    except ValueError:
        return None


def require_vendor_staff(actor: Actor) -> None:
    """Vendor staff with ``view_clients`` only; anyone outside the vendor gets 404."""
    if actor.org is None or not actor.org.is_vendor:
        raise NotFound()
    if "notices:read" not in actor.scopes:  # a vendor API token with that scope reads every notice
        actor.require(Permission.VIEW_CLIENTS)


# ---------------------------------------------------------------- the list of notices

@dataclass(frozen=True)
class NoticeFilters:
    type: str = ""
    org_id: uuid.UUID | None = None  # vendor staff only
    status: str = ""  # notices with at least one delivery in this state
    before: uuid.UUID | None = None

    def query(self, *, before: uuid.UUID | None = None) -> str:
        values = {"type": self.type, "org": str(self.org_id or ""), "status": self.status,
                  "before": str(before or "")}
        return urlencode({key: value for key, value in values.items() if value})

    @property
    def active(self) -> bool:
        return bool(self.type or self.org_id or self.status)


def parse_notice_filters(params: Mapping[str, str]) -> NoticeFilters:
    """The filters in the query string; InvalidInput naming the field that is wrong."""
    kind = params.get("type", "").strip()
    if kind and kind not in set(NoticeType):
        raise InvalidInput("Choose a notice type from the list.", fields={"type": "Unknown type."})
    status = params.get("status", "").strip()
    if status and status not in set(DeliveryStatus):
        raise InvalidInput("Choose a delivery state from the list.", fields={"status": "Unknown state."})
    org_id = _uuid(raw) if (raw := params.get("org", "").strip()) else None
    if raw and org_id is None:
        raise InvalidInput("Choose an organisation from the list.", fields={"org": "Unknown."})
    before = _uuid(raw_before) if (raw_before := params.get("before", "").strip()) else None
    if raw_before and before is None:
        raise InvalidInput("That page of notices does not exist.", fields={"before": "Invalid."})
    return NoticeFilters(type=kind, org_id=org_id, status=status, before=before)


@dataclass(frozen=True)
class NoticeRow:
    notice: Notice
    organisation: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class NoticesPage:
    rows: list[NoticeRow]
    older: uuid.UUID | None
    organisations: list[Organisation] = field(default_factory=list)  # the filter's choices (vendor staff)


async def _visible(session: AsyncSession, actor: Actor, org: Organisation | None,
                   filters: NoticeFilters) -> Select[Any]:
    if org is not None:
        return scoped(select(Notice), Notice, org)
    require_vendor_staff(actor)
    if filters.org_id is None:
        return select(Notice)
    chosen = await session.get(Organisation, filters.org_id)
    if chosen is None:
        raise InvalidInput("Choose an organisation from the list.", fields={"org": "Unknown."})
    return scoped(select(Notice), Notice, chosen)


async def _status_counts(session: AsyncSession, notice_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, int]]:
    counts: dict[uuid.UUID, dict[str, int]] = {key: {} for key in notice_ids}
    if notice_ids:
        for notice_id, status, count in (await session.execute(
            select(Delivery.notice_id, Delivery.status, func.count())
            .where(Delivery.notice_id.in_(notice_ids)).group_by(Delivery.notice_id, Delivery.status)
        )).all():
            counts[notice_id][str(status)] = int(count)
    return counts


async def _org_names(session: AsyncSession, org_ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not org_ids:
        return {}
    rows = (await session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))))
    return {org_id: name for org_id, name in rows.all()}


def _organisation_label(names: dict[uuid.UUID, str], org_id: uuid.UUID | None) -> str:
    return names.get(org_id, "") if org_id is not None else "Public subscribers"


async def notices_page(session: AsyncSession, *, actor: Actor, org: Organisation | None,
                       filters: NoticeFilters, size: int = PAGE_SIZE, with_choices: bool = False) -> NoticesPage:
    """Notices newest first with their delivery counts: ``org``'s own, or (``org`` None) every notice for vendor
    staff, who may also get the client organisations to filter by (``with_choices``)."""
    statement = await _visible(session, actor, org, filters)
    if filters.type:
        statement = statement.where(Notice.type == filters.type)
    if filters.status:
        statement = statement.where(Notice.id.in_(
            select(Delivery.notice_id).where(Delivery.status == DeliveryStatus(filters.status))))
    if filters.before is not None:
        cursor = (await session.execute(select(Notice.created_at).where(Notice.id == filters.before))).scalar()
        if cursor is not None:
            statement = statement.where(or_(Notice.created_at < cursor,
                                            and_(Notice.created_at == cursor, Notice.id < filters.before)))
    notices = list((await session.execute(
        statement.order_by(Notice.created_at.desc(), Notice.id.desc()).limit(size + 1))).scalars())
    older = notices[size - 1].id if len(notices) > size else None
    notices = notices[:size]
    counts = await _status_counts(session, [n.id for n in notices])
    names = await _org_names(session, {n.org_id for n in notices if n.org_id is not None})
    choices: list[Organisation] = []
    if org is None and with_choices:
        choices = await accounts_service.all_clients(session)
    return NoticesPage([NoticeRow(n, _organisation_label(names, n.org_id), counts[n.id]) for n in notices], older,
                       choices)


async def deliveries_of(session: AsyncSession, notices: list[Notice]) -> dict[uuid.UUID, list[Delivery]]:
    """The deliveries of ``notices`` (already visible to the reader), by notice."""
    found: dict[uuid.UUID, list[Delivery]] = {n.id: [] for n in notices}
    if notices:
        for delivery in (await session.execute(
            select(Delivery).where(Delivery.notice_id.in_(list(found)))
            .order_by(Delivery.channel, Delivery.email, Delivery.id)
        )).scalars():
            found[delivery.notice_id].append(delivery)
    return found


# ---------------------------------------------------------------- one notice, every recipient

@dataclass(frozen=True)
class NoticeDetail:
    notice: Notice
    organisation: str
    deliveries: list[Delivery]  # with their attempts and webhook endpoint loaded

    @property
    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for delivery in self.deliveries:
            found[str(delivery.status)] = found.get(str(delivery.status), 0) + 1
        return found


async def notice_detail(session: AsyncSession, *, actor: Actor, org: Organisation | None,
                        notice_id: str) -> NoticeDetail:
    """One notice with every recipient and attempt: ``org``'s own, or (``org`` None) any notice for vendor staff."""
    key = _uuid(notice_id)
    if key is None:
        raise NotFound()
    statement = select(Notice).where(Notice.id == key).options(
        selectinload(Notice.deliveries).selectinload(Delivery.attempt_rows),
        selectinload(Notice.deliveries).selectinload(Delivery.endpoint),
    )
    if org is not None:
        statement = scoped(statement, Notice, org)
    else:
        require_vendor_staff(actor)
    notice = (await session.execute(statement)).scalar_one_or_none()
    if notice is None:
        raise NotFound()
    names = await _org_names(session, {notice.org_id} if notice.org_id else set())
    deliveries = sorted(notice.deliveries, key=lambda d: (str(d.channel), d.email or "", str(d.endpoint_id or "")))
    return NoticeDetail(notice, _organisation_label(names, notice.org_id), deliveries)


# ---------------------------------------------------------------- acknowledgements

_WITH_NOTICE = (selectinload(Delivery.notice),)


async def delivery_for_ack_link(session: AsyncSession, *, secret_key: str, token: str) -> Delivery:
    """The delivery an acknowledgement link was made for (with its notice), or 404."""
    delivery_id = delivery_id_from_ack_token(secret_key, token) if len(token) <= 200 else None
    delivery = (await session.execute(
        select(Delivery).where(Delivery.id == delivery_id).options(*_WITH_NOTICE)
    )).scalar_one_or_none() if delivery_id else None
    if delivery is None:
        raise NotFound(INVALID_ACK_LINK)
    return delivery


async def delivery_of(session: AsyncSession, *, org: Organisation, delivery_id: str) -> Delivery:
    """One of ``org``'s deliveries (with its notice), or 404."""
    key = _uuid(delivery_id)
    delivery = (await session.execute(
        scoped(select(Delivery).where(Delivery.id == key), Delivery, org).options(*_WITH_NOTICE)
    )).scalar_one_or_none() if key else None
    if delivery is None:
        raise NotFound()
    return delivery


async def acknowledge(session: AsyncSession, *, actor: Actor, delivery: Delivery, by: str) -> bool:
    """Record that the recipient confirmed receipt (once; later calls change nothing) and stop any retry."""
    if delivery.acknowledged_at is not None:
        return False
    previous = delivery.status
    # One conditional statement, so two clicks at the same moment record one acknowledgement.
    changed = (await session.execute(
        update(Delivery).where(Delivery.id == delivery.id, Delivery.acknowledged_at.is_(None))
        .values(status=DeliveryStatus.ACKNOWLEDGED, acknowledged_at=utcnow(), acknowledged_by=by[:400],
                lease_until=None, leased_by=None)
        .execution_options(synchronize_session=False)
    )).rowcount  # type: ignore[attr-defined]
    await session.refresh(delivery, ["status", "acknowledged_at", "acknowledged_by", "lease_until", "leased_by"])
    if not changed:
        return False
    await audit.record(session, actor=actor, tag="delivery:acknowledged", subject=delivery,
                       data={"notice_id": str(delivery.notice_id), "by": delivery.acknowledged_by,
                             "was": previous.value})
    return True


# ---------------------------------------------------------------- the vendor dashboard

@dataclass(frozen=True)
class UnreachedClient:
    org: Organisation
    notice: Notice
    recipients: int  # 0: the notice had nobody to go to


@dataclass(frozen=True)
class DashboardFlags:
    dead_deliveries: int
    unreached: list[UnreachedClient]
    missing_contacts: list[tuple[Organisation, list[Role]]]

    @property
    def any(self) -> bool:
        return bool(self.dead_deliveries or self.unreached or self.missing_contacts)


async def _unreached_clients(session: AsyncSession) -> list[UnreachedClient]:
    routed = [spec.type.value for spec in SPECS.values() if spec.roles]  # not one-off test events
    latest = (select(Notice.org_id, func.max(Notice.created_at).label("at"))
              .where(Notice.org_id.is_not(None),  # tenancy: every client's own newest notice, for vendor staff
                     Notice.type.in_(routed))
              .group_by(Notice.org_id).subquery())
    failing = or_(Delivery.status == DeliveryStatus.DEAD,
                  and_(Delivery.status == DeliveryStatus.QUEUED, Delivery.last_error != ""))
    per_notice = (select(Delivery.notice_id, func.count().label("total"),
                         func.sum(case((failing, 1), else_=0)).label("failing"))
                  .group_by(Delivery.notice_id).subquery())
    rows = (await session.execute(
        select(Notice, Organisation, func.coalesce(per_notice.c.total, 0), func.coalesce(per_notice.c.failing, 0))
        .join(latest, and_(latest.c.org_id == Notice.org_id,  # tenancy: joins a notice to its own org's newest
                           latest.c.at == Notice.created_at, Notice.type.in_(routed)))
        .join(Organisation, Organisation.id == Notice.org_id)  # tenancy: a notice with its own organisation
        .outerjoin(per_notice, per_notice.c.notice_id == Notice.id)
        .order_by(func.lower(Organisation.name))
    )).all()
    found: dict[uuid.UUID, UnreachedClient] = {}
    for notice, org, total, failed in rows:
        if int(total) == 0 or int(failed) == int(total):
            found.setdefault(org.id, UnreachedClient(org, notice, int(total)))
    return list(found.values())


async def _clients_missing_contacts(session: AsyncSession) -> list[tuple[Organisation, list[Role]]]:
    required = [role for role, _needed in REQUIRED_CONTACTS]
    held: dict[uuid.UUID, set[Role]] = {}
    for org_id, role in (await session.execute(
        select(Membership.org_id, MembershipRole.role).join(MembershipRole)
        .join(User, User.id == Membership.user_id)
        .where(MembershipRole.role.in_(required), User.disabled_at.is_(None)).distinct()
    )).all():
        held.setdefault(org_id, set()).add(Role(role))
    clients = await accounts_service.all_clients(session)
    found = []
    for org in clients:
        missing = [role for role in required if role not in held.get(org.id, set())]
        if missing:
            found.append((org, missing))
    return found


async def dashboard_flags(session: AsyncSession, *, actor: Actor) -> DashboardFlags:
    """What needs a person: dead deliveries, clients whose newest notice reached nobody, and clients without a
    designated privacy or security contact."""
    require_vendor_staff(actor)
    dead = int((await session.execute(
        select(func.count()).select_from(Delivery).where(Delivery.status == DeliveryStatus.DEAD)
    )).scalar_one())
    return DashboardFlags(dead, await _unreached_clients(session), await _clients_missing_contacts(session))
