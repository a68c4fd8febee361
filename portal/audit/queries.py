"""Reading the audit trail: who may see which events, the filters, and pages keyed by ``seq``.

Invariants:
- reading needs ``view_audit``; vendor staff see every event and may narrow to one organisation, anyone else
  sees only their own organisation's events, and asking for another organisation answers 404;
- ``_only_org`` is the one place the trail is filtered by organisation. Events are not ``TenantScoped`` (they
  keep no foreign key so that they outlive the organisations they speak of), so ``tenancy.scoped`` cannot
  apply;
- pages run newest first and are keyed by ``seq`` ("older than event N"), so new events never shift a page;
- exports run oldest first up to the newest event committed when the export began, in chain order.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.errors import InvalidInput, NotFound

PAGE_SIZE = 50
EXPORT_BATCH = 1000
FILTER_FIELDS = ("tag", "actor", "from", "to", "org")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CURSOR = re.compile(r"^[0-9]{1,18}$")


@dataclass(frozen=True)
class AuditFilters:
    """What the reader asked for. ``tag`` ending in ``:`` or ``*`` is a prefix (``membership:``)."""

    tag: str = ""
    actor: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    org_id: uuid.UUID | None = None
    before: int | None = None

    @property
    def active(self) -> bool:
        return bool(self.tag or self.actor or self.date_from or self.date_to or self.org_id)

    def params(self) -> dict[str, str]:
        """The filters as query parameters (without the page cursor)."""
        values = {
            "tag": self.tag,
            "actor": self.actor,
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "org": str(self.org_id) if self.org_id else "",
        }
        return {key: value for key, value in values.items() if value}

    def query(self, *, before: int | None = None) -> str:
        params = self.params()
        if before is not None:
            params["before"] = str(before)
        return urlencode(params)


def parse_filters(params: Mapping[str, str]) -> AuditFilters:
    """The filters in ``params`` (query parameters); raises InvalidInput naming the field that is wrong."""
    tag = params.get("tag", "").strip()
    actor = params.get("actor", "").strip()
    if len(tag) > 80:
        raise InvalidInput("The tag filter is too long (at most 80 characters).", fields={"tag": "Too long."})
    if len(actor) > 200:
        raise InvalidInput("The actor filter is too long (at most 200 characters).",
                           fields={"actor": "Too long."})
    date_from = _date(params.get("from", ""), "from", "From")
    date_to = _date(params.get("to", ""), "to", "To")
    if date_from and date_to and date_from > date_to:
        raise InvalidInput("The 'from' date is after the 'to' date.", fields={"from": "After the 'to' date."})
    org_id: uuid.UUID | None = None
    if raw_org := params.get("org", "").strip():
        try:
            org_id = uuid.UUID(raw_org)
        except ValueError:
            raise InvalidInput("Choose an organisation from the list.", fields={"org": "Unknown."}) from None
    before: int | None = None
    if raw_before := params.get("before", "").strip():
        if not _CURSOR.match(raw_before):
            raise InvalidInput("That page of the audit log does not exist.", fields={"before": "Invalid."})
        before = int(raw_before)
    return AuditFilters(tag=tag, actor=actor, date_from=date_from, date_to=date_to, org_id=org_id,
                        before=before)


def _date(raw: str, name: str, label: str) -> dt.date | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        if not _DATE.match(raw):
            raise ValueError(raw)
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"'{label}' must be a date like 2026-01-31.",
                           fields={name: "Not a date."}) from None


# ---------------------------------------------------------------- who sees what

def _only_org(statement: Select[Any], org_id: uuid.UUID) -> Select[Any]:
    """The audit trail's one organisation filter."""
    return statement.where(AuditEvent.org_id == org_id)  # tenancy: events outlive orgs, so no TenantScoped


def _sees_everything(actor: Actor) -> bool:
    return actor.trusted or (actor.org is not None and actor.org.is_vendor)


def _visible(statement: Select[Any], actor: Actor, org_id: uuid.UUID | None) -> Select[Any]:
    """Only the events ``actor`` may read: 403 without ``view_audit``, 404 when asking for another org."""
    actor.require(Permission.VIEW_AUDIT)
    if _sees_everything(actor):
        return statement if org_id is None else _only_org(statement, org_id)
    if actor.org is None:
        raise NotFound()
    own = actor.org.id
    if org_id is not None and org_id != own:  # tenancy: a client may only ask for its own organisation
        raise NotFound()
    return _only_org(statement, own)


def _filtered(statement: Select[Any], actor: Actor, filters: AuditFilters) -> Select[Any]:
    statement = _visible(statement, actor, filters.org_id)
    if filters.tag.endswith((":", "*")):
        statement = statement.where(AuditEvent.tag.startswith(filters.tag.rstrip("*"), autoescape=True))
    elif filters.tag:
        statement = statement.where(AuditEvent.tag == filters.tag)
    if filters.actor:
        actor_text = func.lower(AuditEvent.actor)
        statement = statement.where(actor_text.contains(filters.actor.lower(), autoescape=True))
    if filters.date_from:
        statement = statement.where(AuditEvent.occurred_at >= _start_of(filters.date_from))
    if filters.date_to and filters.date_to < dt.date.max:
        day_after = filters.date_to + dt.timedelta(days=1)
        statement = statement.where(AuditEvent.occurred_at < _start_of(day_after))
    return statement


def _start_of(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)


# ---------------------------------------------------------------- the log page

@dataclass(frozen=True)
class AuditRow:
    seq: int
    occurred_at: dt.datetime
    organisation: str
    actor: str
    tag: str
    subject_type: str
    subject_id: str
    data: str
    ip: str

    @property
    def time(self) -> str:
        return self.occurred_at.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    older: int | None  # the ``before`` cursor of the next (older) page, None on the last page
    organisations: list[Organisation]  # the organisation filter's choices (vendor staff only)
    tags: list[str]  # tags the reader can see, for suggestions
    sees_everything: bool


async def audit_page(session: AsyncSession, *, actor: Actor, filters: AuditFilters | None,
                     size: int = PAGE_SIZE) -> AuditPage:
    """A page of the events ``actor`` may read, newest first; no rows when ``filters`` could not be parsed."""
    actor.require(Permission.VIEW_AUDIT)
    rows: list[AuditRow] = []
    older: int | None = None
    if filters is not None:
        statement = _filtered(select(AuditEvent), actor, filters)
        if filters.before is not None:
            statement = statement.where(AuditEvent.seq < filters.before)
        events = list((await session.execute(
            statement.order_by(AuditEvent.seq.desc()).limit(size + 1)
        )).scalars())
        if len(events) > size:
            events = events[:size]
            older = events[-1].seq
        names = await _org_names(session, {e.org_id for e in events if e.org_id is not None})
        rows = [_row(event, names) for event in events]
    everything = _sees_everything(actor)
    organisations = await _all_orgs(session) if everything else []
    tags = list((await session.execute(
        _visible(select(AuditEvent.tag), actor, None).distinct().order_by(AuditEvent.tag).limit(300)
    )).scalars())
    return AuditPage(rows, older, organisations, tags, everything)


async def _org_names(session: AsyncSession, ids: set[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    found = await session.execute(select(Organisation.id, Organisation.name).where(Organisation.id.in_(ids)))
    return {row.id: row.name for row in found}


async def _all_orgs(session: AsyncSession) -> list[Organisation]:
    orgs = (await session.execute(select(Organisation))).scalars().all()
    return sorted(orgs, key=lambda o: (not o.is_vendor, o.name.lower()))


def _row(event: AuditEvent, names: Mapping[uuid.UUID, str]) -> AuditRow:
    if event.org_id is None:
        organisation = "Portal-wide"
    else:
        organisation = names.get(event.org_id) or f"Removed organisation {str(event.org_id)[:8]}"
    return AuditRow(seq=event.seq, occurred_at=event.occurred_at, organisation=organisation,
                    actor=event.actor, tag=event.tag, subject_type=event.subject_type,
                    subject_id=event.subject_id, data=compact_data(event.data), ip=event.ip)


def compact_data(data: Mapping[str, Any]) -> str:
    """``key: value`` lines for reading; strings as they are, anything else as compact JSON."""
    return "\n".join(
        f"{key}: {value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)}"
        for key, value in sorted(data.items())
    )


# ---------------------------------------------------------------- exports

EXPORT_COLUMNS = ("seq", "id", "occurred_at", "org_id", "actor_id", "actor", "tag", "subject_type",
                  "subject_id", "data", "ip", "prev_hash", "hash")


async def export_events(session: AsyncSession, *, actor: Actor,
                        filters: AuditFilters) -> AsyncIterator[dict[str, Any]]:
    """Every event ``actor`` may read that matches ``filters``, oldest first, with what re-verifying needs.

    The checks run now, before anything is streamed; the events are read in batches as they are consumed. The
    page cursor (``before``) does not apply: an export holds every matching event.
    """
    actor.require(Permission.VIEW_AUDIT)
    statement = _filtered(select(*(getattr(AuditEvent, c) for c in EXPORT_COLUMNS)), actor, filters)
    newest = (await session.execute(select(func.max(AuditEvent.seq)))).scalar_one_or_none() or 0
    return _exported(session, statement.where(AuditEvent.seq <= newest))


async def _exported(session: AsyncSession, statement: Select[Any]) -> AsyncIterator[dict[str, Any]]:
    last = 0
    while True:
        batch = (await session.execute(
            statement.where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(EXPORT_BATCH)
        )).mappings().all()
        for row in batch:
            yield {
                **row,
                "id": str(row["id"]),
                "occurred_at": row["occurred_at"].astimezone(dt.UTC).isoformat(),
                "org_id": str(row["org_id"]) if row["org_id"] else None,
                "actor_id": str(row["actor_id"]) if row["actor_id"] else None,
            }
        if len(batch) < EXPORT_BATCH:
            return
        last = batch[-1]["seq"]
