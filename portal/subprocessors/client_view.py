"""The sub-processor list as it applies to one client: what the page "Our sub-processors" and the API show.

Invariants:
- members of the client (any role) read it; vendor staff read any client's with ``VIEW_CLIENTS``, and API tokens
  of the vendor with the endpoint's scope; anyone else gets 404, so another client's ids leak nothing;
- an entry of the list in force today is marked when a change to it that has taken effect is not in force for
  this client (pending, objected, not authorised), with the change and the reason; a change that has not taken
  effect yet marks nothing (it is shown among the upcoming changes);
- every change shown concerns the client: one it was asked to authorise (its authorisation row), or an upcoming
  change it is told about for information (removals, or any change when it had no agreement at publication);
- only the client's own members with ``RESPOND_TO_CHANGES`` may answer, and only while the row is pending and
  its deadline has not passed (``responses`` enforces the same).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.accounts.service import visible_org
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import Agreement, Authorisation
from portal.db import utcnow
from portal.errors import NotFound
from portal.subprocessors import registry, responses
from portal.subprocessors.entries import Entry
from portal.subprocessors.geography import TRANSFER_MECHANISMS, country_name
from portal.subprocessors.models import AuthorisationState, ChangeAuthorisation, ChangeKind, ListVersion, Objection


def countdown(remaining: dt.timedelta) -> str:
    """Time left as a person reads it: '12 days 3 hours', '5 hours', 'less than an hour'."""
    hours = int(remaining.total_seconds() // 3600)
    days, hours = divmod(hours, 24)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours} hour{'s' if hours != 1 else ''}")
    return " ".join(parts) if parts else "less than an hour"


def places(codes: list[str]) -> str:
    """Country codes with their names, e.g. 'Germany (DE), United States (US)'."""
    return ", ".join(f"{country_name(code)} ({code})" for code in codes)


def who(label: str) -> str:
    """An actor label as a reader knows it: the person's email, or what the portal did."""
    if label.startswith("user:"):
        return label.removeprefix("user:")
    if label == responses.SYSTEM_DEADLINE:
        return "the portal, at the deadline"
    return label.removeprefix("token:").removeprefix("system:") or "unknown"


@dataclass(frozen=True)
class Terms:
    """What the client's active agreement says about sub-processor changes (None: no active agreement)."""

    agreement: Agreement | None
    notice_days: int  # the agreement's own period, else the portal's default
    default_days: bool  # True when the agreement sets no period of its own

    @property
    def authorisation(self) -> Authorisation | None:
        return self.agreement.subprocessor_authorisation if self.agreement is not None else None


@dataclass(frozen=True)
class Change:
    """One change of one published version as it concerns the client, with its authorisation row if it has one."""

    version: ListVersion
    item: dict[str, Any]  # the change as the version records it (``entries.notice_item``)
    row: ChangeAuthorisation | None
    now: dt.datetime

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind(self.item["kind"])

    @property
    def kind_label(self) -> str:
        return self.kind.label

    @property
    def name(self) -> str:
        return str(self.item.get("name", ""))

    @property
    def entry_id(self) -> str:
        return str(self.item.get("entry_id", ""))

    @property
    def in_effect(self) -> bool:
        """Whether the version has taken effect (for the vendor's list; this client may still hold it back)."""
        return self.version.effective_date <= self.now.date()

    @property
    def open_for_answer(self) -> bool:
        return (self.row is not None and self.row.state is AuthorisationState.PENDING
                and self.now < self.row.deadline)

    @property
    def time_left(self) -> str:
        return countdown(self.row.deadline - self.now) if self.row is not None and self.open_for_answer else ""

    @property
    def in_force_for_client(self) -> bool:
        """A change without a row (informational) follows the list; one with a row needs the client's consent."""
        return self.row is None or self.row.state.in_force

    @property
    def objections(self) -> list[Objection]:
        return list(self.row.objections) if self.row is not None else []

    @property
    def open_objection(self) -> Objection | None:
        return next((o for o in self.objections if o.is_open), None)

    @property
    def position(self) -> str:
        """Where the client stands on this change, in a sentence."""
        row = self.row
        if row is None:
            return "For your information: no answer is needed." if self.kind is ChangeKind.REMOVED else \
                "For your information: no authorisation was requested from your organisation."
        deadline = f"{row.deadline.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
        if row.state is AuthorisationState.PENDING:
            if self.open_for_answer:
                return f"Awaiting your answer until {deadline} ({self.time_left} left)."
            return f"The deadline ({deadline}) has passed; the outcome is being recorded."
        if row.state is AuthorisationState.OBJECTED:
            objection = self.open_objection
            if objection is not None:
                return "You objected; the vendor has not resolved the objection yet."
            last = self.objections[-1] if self.objections else None
            if last is not None and last.resolution is not None:
                return f"You objected; resolved: {last.resolution.label}."
            return "You objected."
        if row.state is AuthorisationState.NOT_AUTHORISED:
            return f"Not authorised: the deadline ({deadline}) passed without your approval, which your " \
                   "agreement requires."
        if row.state is AuthorisationState.DEEMED_AUTHORISED:
            return f"Deemed authorised: no objection by the deadline ({deadline})."
        return "Authorised."

    @property
    def places(self) -> str:
        return places(list(self.item.get("locations", [])))

    @property
    def decided_by(self) -> str:
        return who(self.row.decided_by) if self.row is not None and self.row.decided_by else ""


@dataclass(frozen=True)
class ListedEntry:
    """An entry of the list in force, its depth in the chain, and the changes to it this client holds back."""

    entry: Entry
    depth: int
    parent_name: str  # the entry that engages it ('' at the top of the chain)
    held_back: tuple[Change, ...]

    @property
    def places(self) -> str:
        return places(list(self.entry.get("locations", [])))

    @property
    def in_force(self) -> bool:
        return not self.held_back

    @property
    def transfer_mechanism(self) -> str:
        return TRANSFER_MECHANISMS.get(self.entry.get("transfer_mechanism", ""), "")


@dataclass(frozen=True)
class Section:
    """A group of changes of one version on the page; ``anchor`` is set on the first group of each version, which
    is where the link in a change notice (``#v<number>``) lands."""

    version: ListVersion
    changes: list[Change]
    anchor: bool


@dataclass(frozen=True)
class ClientView:
    org: Organisation
    terms: Terms
    now: dt.datetime
    version: ListVersion | None  # the vendor's list in force today
    entries: list[ListedEntry]
    changes: list[Change]  # newest version first
    own: bool  # the viewer is a member (or token) of the client itself
    can_respond: bool

    @property
    def today(self) -> dt.date:
        return self.now.date()

    @property
    def awaiting(self) -> list[Change]:
        return [c for c in self.changes if c.open_for_answer]

    def answerable(self, authorisation_id: str) -> bool:
        """Whether the page shows a form to answer ``authorisation_id`` (so an error about it is shown there)."""
        return self.can_respond and any(str(c.row.id) == authorisation_id for c in self.awaiting if c.row)

    @property
    def upcoming(self) -> list[Change]:
        """Changes not yet in effect that ask nothing of the client (those that do are awaiting or answered)."""
        return [c for c in self.changes if c.row is None and not c.in_effect]

    @property
    def answered(self) -> list[Change]:
        """The history of the client's positions: every authorisation row no longer open for an answer."""
        return [c for c in self.changes if c.row is not None and not c.open_for_answer]

    @property
    def held_back(self) -> list[ListedEntry]:
        return [e for e in self.entries if not e.in_force]

    @staticmethod
    def who(label: str) -> str:
        return who(label)

    def sections(self) -> dict[str, list[Section]]:
        """The page's three lists of changes grouped by version, each version anchored once."""
        seen: set[int] = set()
        out: dict[str, list[Section]] = {}
        for name, changes in (("awaiting", self.awaiting), ("upcoming", self.upcoming),
                              ("answered", self.answered)):
            groups: list[Section] = []
            for change in changes:
                if groups and groups[-1].version.number == change.version.number:
                    groups[-1].changes.append(change)
                    continue
                groups.append(Section(change.version, [change], change.version.number not in seen))
                seen.add(change.version.number)
            out[name] = groups
        return out


# ---------------------------------------------------------------- building it

async def client_org(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Organisation:
    """The client organisation ``org_id`` if ``actor`` may read its sub-processors: its own members (any role) and
    vendor staff who view clients; anyone else, and the vendor organisation itself, get 404."""
    org = await visible_org(session, actor=actor, org_id=org_id)
    if org.is_vendor:
        raise NotFound()
    own = actor.org is not None and actor.org.id == org.id
    if not own and actor.membership is not None:
        actor.require(Permission.VIEW_CLIENTS)
    return org


def _item_of(row: ChangeAuthorisation) -> dict[str, Any]:
    for item in row.version.changes:
        if item.get("entry_id") == str(row.entry_id) and item.get("kind") == row.change_kind.value:
            return item
    return {"kind": row.change_kind.value, "entry_id": str(row.entry_id), "name": row.entry_name}


async def _changes(session: AsyncSession, org: Organisation, now: dt.datetime) -> list[Change]:
    rows = await responses.authorisations_of(session, org)
    changes = [Change(row.version, _item_of(row), row, now) for row in rows]
    asked = {(row.version.number, str(row.entry_id)) for row in rows}
    for version in await registry.upcoming_after(session, now.date()):
        changes += [Change(version, item, None, now) for item in version.changes
                    if (version.number, item.get("entry_id")) not in asked]
    return sorted(changes, key=lambda c: (-c.version.number, c.name.lower(), c.entry_id))


def _listed(version: ListVersion | None, changes: list[Change]) -> list[ListedEntry]:
    in_effect = [c for c in changes if c.row is not None and c.in_effect]
    held = responses.not_in_force_for([c.row for c in in_effect if c.row is not None])
    by_entry: dict[str, list[Change]] = {}
    for change in in_effect:
        if change.row is not None and change.row.entry_id in held and not change.in_force_for_client:
            by_entry.setdefault(change.entry_id, []).append(change)
    entries = registry.entries_of(version)
    names = {e["id"]: e["name"] for e in entries}
    return [ListedEntry(entry, depth, names.get(entry.get("parent_id") or "", ""),
                        tuple(by_entry.get(entry["id"], ())))
            for entry, depth in registry.nested(entries)]


async def build(session: AsyncSession, *, actor: Actor, org: Organisation, default_notice_days: int,
                now: dt.datetime | None = None) -> ClientView:
    """The view of ``org`` (whose access the caller has checked) at ``now``."""
    now = now or utcnow()
    agreement = await agreements.active_agreement(session, org)
    terms = Terms(agreement, agreement.notice_days_or(default_notice_days) if agreement else default_notice_days,
                  agreement is None or agreement.notice_days is None)
    version = await registry.in_force_on(session, now.date())
    changes = await _changes(session, org, now)
    own = actor.org is not None and actor.org.id == org.id
    return ClientView(org=org, terms=terms, now=now, version=version, entries=_listed(version, changes),
                      changes=changes, own=own,
                      can_respond=own and actor.membership is not None and actor.can(Permission.RESPOND_TO_CHANGES))


async def for_client(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str, default_notice_days: int,
                     now: dt.datetime | None = None) -> ClientView:
    """The list as it applies to client ``org_id``, for someone allowed to read it (else 404 or 403)."""
    org = await client_org(session, actor=actor, org_id=org_id)
    return await build(session, actor=actor, org=org, default_notice_days=default_notice_days, now=now)
