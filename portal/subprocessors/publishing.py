"""Drafting changes to the registry and publishing them as the next list version.

Publishing, in one transaction: checks every entry can be active (legal requirements 28 and 30) and that the
effective date leaves every client with an active agreement its notice period (requirement 34; removals alone are
informational, requirement 39); writes the immutable version; records each such client's pending authorisation of
each change with its own deadline; queues the notice drafted from the diff to those clients' privacy contacts and to
public subscribers (requirements 35, 36, 40); audits it; and clears the drafts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import Agreement
from portal.db import after_commit, utcnow
from portal.errors import InvalidInput
from portal.notifications import catalog
from portal.notifications.service import notify
from portal.subprocessors import public_cache, registry
from portal.subprocessors.entries import (
    Entry,
    clean_entry,
    diff_entries,
    notice_item,
    publish_problems,
    sha256_of,
    sorted_entries,
)
from portal.subprocessors.models import ChangeAuthorisation, ChangeKind, DraftChange, DraftKind, ListVersion

# ---------------------------------------------------------------- drafts

async def draft_entry(session: AsyncSession, *, actor: Actor, raw: Mapping[str, Any], entry_id: str | None = None,
                      replaces: str | None = None, strict: bool = False) -> DraftChange:
    """Draft an addition (no ids), a change of ``entry_id``, or a new entry replacing ``replaces``."""
    actor.require_vendor(Permission.MANAGE_SUBPROCESSORS)
    copy = await registry.working_copy(session)
    if entry_id is not None and replaces is not None:
        raise ValueError("an entry is either changed or replaced")
    target = copy.find(entry_id) if entry_id is not None else None
    old = copy.find(replaces) if replaces is not None else None
    if (target is not None and target.removed) or (old is not None and old.removed):
        raise InvalidInput("This entry is drafted for removal; discard that draft first.")
    if old is not None and old.published is None:
        raise InvalidInput("Only a published entry can be replaced; edit the drafted one instead.")
    new_id = entry_id if entry_id is not None else str(uuid.uuid4())
    known = [i for i in copy.ids if i != (replaces or "")]
    entry = clean_entry(raw, entry_id=new_id, known_ids=known, strict=strict)
    _refuse_loop(copy, entry)
    draft = target.draft if target is not None else None
    if draft is None:
        kind = DraftKind.REPLACE if old is not None else (DraftKind.MODIFY if target is not None else DraftKind.ADD)
        draft = DraftChange(kind=kind, entry_id=uuid.UUID(new_id),
                            replaces_entry_id=uuid.UUID(replaces) if replaces else None, data=entry,
                            created_by=actor.label)
        session.add(draft)
    else:
        draft.data = entry
        draft.updated_at = utcnow()
    if target is not None and draft.kind is DraftKind.MODIFY and target.published == entry:
        await session.delete(draft)  # edited back to what is published: nothing left to draft
        await session.flush()
        await audit.record(session, actor=actor, tag="subprocessor_draft:discarded", subject=draft,
                           data={"name": entry["name"]})
        return draft
    await session.flush()
    await audit.record(session, actor=actor, tag=f"subprocessor_draft:{draft.kind.value}", subject=draft,
                       data={"entry_id": new_id, "name": entry["name"], "replaces": replaces})
    return draft


def _refuse_loop(copy: registry.WorkingCopy, entry: Entry) -> None:
    """The chain has a top (legal requirement 29): an entry cannot be engaged, directly or further up, by an entry it
    engages itself."""
    parents = {item.entry["id"]: item.entry.get("parent_id") or "" for item in copy.entries if not item.removed}
    seen, parent = {entry["id"]}, entry.get("parent_id") or ""
    while parent:
        if parent in seen:
            message = "That entry is engaged, directly or further up the chain, by this one: choose another."
            raise InvalidInput(message, fields={"parent_id": message})
        seen.add(parent)
        parent = parents.get(parent, "")


async def draft_removal(session: AsyncSession, *, actor: Actor, entry_id: str) -> DraftChange:
    """Draft the removal of a published entry (its sub-processors in the chain must go first or with it)."""
    actor.require_vendor(Permission.MANAGE_SUBPROCESSORS)
    copy = await registry.working_copy(session)
    target = copy.find(entry_id)
    if target.published is None:
        raise InvalidInput("This entry is not published yet; discard its draft instead.")
    if target.removed:
        return target.draft or target.replaced_by  # type: ignore[return-value]
    children = [i.entry["name"] for i in copy.entries
                if i.entry.get("parent_id") == target.entry["id"] and not i.removed]
    if children:
        raise InvalidInput(f"{target.entry['name']} still engages {', '.join(children)}; remove or re-parent "
                           "those first.")
    if target.draft is not None:
        await session.delete(target.draft)
        await session.flush()
    draft = DraftChange(kind=DraftKind.REMOVE, entry_id=uuid.UUID(target.entry["id"]), replaces_entry_id=None,
                        data={}, created_by=actor.label)
    session.add(draft)
    await session.flush()
    await audit.record(session, actor=actor, tag="subprocessor_draft:remove", subject=draft,
                       data={"entry_id": target.entry["id"], "name": target.entry["name"]})
    return draft


async def discard_draft(session: AsyncSession, *, actor: Actor, entry_id: str) -> None:
    """Drop the draft of ``entry_id`` (an unpublished addition disappears; a published entry is left as is)."""
    actor.require_vendor(Permission.MANAGE_SUBPROCESSORS)
    copy = await registry.working_copy(session)
    item = copy.find(entry_id)
    draft = item.draft or item.replaced_by
    if draft is None:
        raise InvalidInput("There is no draft for this entry.")
    stored = await session.get(DraftChange, draft.id)
    if stored is not None:
        await session.delete(stored)
        await session.flush()
    await audit.record(session, actor=actor, tag="subprocessor_draft:discarded", subject=draft,
                       data={"entry_id": entry_id, "name": item.entry.get("name", "")})


# ---------------------------------------------------------------- publishing

@dataclass(frozen=True)
class Plan:
    """What publishing the drafts now would do: the changes, the notice they need, and what stops it."""

    entries: list[Entry]
    changes: list[dict[str, Any]]
    needs_notice: bool
    notice_days: int  # the longest period among the clients' agreements (0 when no notice is needed)
    earliest_effective: dt.date
    problems: dict[str, str]
    clients: list[Agreement]


def _changes(copy: registry.WorkingCopy) -> list[dict[str, Any]]:
    """The drafts as notice items: additions, replacements (the new entry naming the old), changes, removals."""
    replaced = {str(d.replaces_entry_id): d for d in copy.drafts if d.kind is DraftKind.REPLACE}
    published = registry.entries_of(copy.base)
    by_id = {e["id"]: e for e in published}
    after = copy.after_drafts()
    names = {e["id"]: e["name"] for e in [*published, *after]}
    items: list[dict[str, Any]] = []
    for diff in diff_entries(published, after):
        engaged_by = names.get(diff.entry.get("parent_id") or "", "")
        if diff.kind == "added":
            draft = next((d for d in copy.drafts if str(d.entry_id) == diff.entry["id"]), None)
            old = by_id.get(str(draft.replaces_entry_id)) if draft is not None and draft.replaces_entry_id else None
            kind = ChangeKind.REPLACED if old is not None else ChangeKind.ADDED
            items.append(notice_item(kind.value, diff.entry, replaces=old, engaged_by=engaged_by))
        elif diff.kind == "changed":
            items.append(notice_item(ChangeKind.CHANGED.value, diff.entry, fields=diff.fields, engaged_by=engaged_by))
        elif diff.entry["id"] not in replaced:  # a replaced entry is told as part of its replacement
            items.append(notice_item(ChangeKind.REMOVED.value, diff.entry, engaged_by=engaged_by))
    return items


def first_full_day(moment: dt.datetime) -> dt.date:
    """The first date whose start (midnight UTC) is not before ``moment``: a change effective that day was
    announced at least the whole notice period before (legal requirement 34: effective - notified >= N days)."""
    moment = moment.astimezone(dt.UTC)
    return moment.date() if moment.time() == dt.time() else moment.date() + dt.timedelta(days=1)


async def plan(session: AsyncSession, *, default_notice_days: int, now: dt.datetime | None = None) -> Plan:
    now = now or utcnow()
    copy = await registry.working_copy(session)
    entries = copy.after_drafts()
    changes = _changes(copy)
    problems: dict[str, str] = {}
    if not copy.drafts or not changes:
        problems["drafts"] = "There is nothing to publish: draft an addition, change or removal first."
    touched = {c["entry_id"] for c in changes if c["kind"] != ChangeKind.REMOVED.value}
    for entry in entries:
        if entry["id"] in touched:
            for message in publish_problems(entry).values():
                problems[f"entry:{entry['id']}"] = f"{entry['name']}: {message}"
                break
    ids = {e["id"] for e in entries}
    for entry in entries:
        if entry.get("parent_id") and entry["parent_id"] not in ids:
            problems[f"entry:{entry['id']}"] = f"{entry['name']}: the entry that engages it is being removed."
    needs_notice = any(ChangeKind(c["kind"]).needs_notice for c in changes)
    clients = await agreements.all_active(session)
    notice_days = max([a.notice_days_or(default_notice_days) for a in clients] + [default_notice_days]) \
        if needs_notice else 0
    earliest = first_full_day(now + dt.timedelta(days=notice_days)) if needs_notice else now.date()
    base = copy.base
    if base is not None and base.effective_date > earliest:
        earliest = base.effective_date
    return Plan(entries, changes, needs_notice, notice_days, earliest, problems, clients)


async def publish(session: AsyncSession, *, actor: Actor, effective_date: str, summary: str,
                  default_notice_days: int, base_url: str, now: dt.datetime | None = None) -> ListVersion:
    """Publish the drafts as the next version effective on ``effective_date`` (YYYY-MM-DD)."""
    actor.require_vendor(Permission.MANAGE_SUBPROCESSORS)
    now = now or utcnow()
    try:
        effective = dt.date.fromisoformat(effective_date.strip())
    except ValueError:
        raise InvalidInput("Enter the effective date as YYYY-MM-DD.",
                           fields={"effective_date": "Enter a date as YYYY-MM-DD."}) from None
    if len(summary) > 2000:
        raise InvalidInput("The summary is longer than 2000 characters.", fields={"summary": "Too long."})
    planned = await plan(session, default_notice_days=default_notice_days, now=now)
    if planned.problems:
        raise InvalidInput(next(iter(planned.problems.values())), fields=planned.problems)
    base = await registry.latest_version(session)
    if effective < planned.earliest_effective:
        notice_ends = first_full_day(now + dt.timedelta(days=planned.notice_days)) if planned.needs_notice \
            else now.date()
        if base is not None and effective >= notice_ends:
            why = (f"version {base.number} takes effect on {base.effective_date.isoformat()}, and versions take "
                   "effect in order")
        elif planned.needs_notice and planned.clients:
            why = (f"the longest notice period of a client agreement is {planned.notice_days} days, counted from "
                   "this announcement")
        elif planned.needs_notice:
            why = f"the notice period is {planned.notice_days} days, counted from this announcement"
        else:
            why = "a version cannot take effect before it is announced"
        message = f"The effective date must be {planned.earliest_effective.isoformat()} or later: {why}."
        raise InvalidInput(message, fields={"effective_date": message})
    number = (base.number + 1) if base is not None else 1
    document = {"version": number, "effective_date": effective.isoformat(),
                "entries": sorted_entries(planned.entries)}
    version = ListVersion(number=number, announced_at=now, effective_date=effective,
                          notice_days=planned.notice_days, sha256=sha256_of(document), document=document,
                          changes=planned.changes, summary=summary.strip(), published_by=actor.label)
    session.add(version)
    await session.flush()
    await session.execute(delete(DraftChange))
    after_commit(session, public_cache.version_published)
    deadlines = await _open_authorisations(session, version, planned.clients, default_notice_days, now)
    await _notify(session, actor=actor, version=version, clients=planned.clients, deadlines=deadlines,
                  base_url=base_url)
    await audit.record(session, actor=actor, tag="subprocessor_list:published", subject=version,
                       data={"version": number, "sha256": version.sha256, "effective_date": effective.isoformat(),
                             "notice_days": planned.notice_days, "clients": len(planned.clients),
                             "changes": [{"kind": c["kind"], "name": c["name"]} for c in planned.changes]})
    return version


def _deadline(now: dt.datetime, days: int, effective: dt.date) -> dt.datetime:
    """The end of a client's objection window: its notice period from the announcement, and never after the
    change takes effect (midnight UTC starting the effective date)."""
    start_of_effective = dt.datetime.combine(effective, dt.time(), tzinfo=dt.UTC)
    return min(now + dt.timedelta(days=days), start_of_effective)


async def _open_authorisations(session: AsyncSession, version: ListVersion, clients: list[Agreement],
                               default_days: int, now: dt.datetime) -> dict[uuid.UUID, dt.datetime]:
    """A pending authorisation per client and change needing notice; returns each client's deadline."""
    noticed = [c for c in version.changes if ChangeKind(c["kind"]).needs_notice]
    deadlines: dict[uuid.UUID, dt.datetime] = {}
    rows = []
    for agreement in clients:
        days = agreement.notice_days_or(default_days)
        deadline = _deadline(now, days, version.effective_date)
        deadlines[agreement.org_id] = deadline
        rows += [{"id": uuid.uuid4(), "org_id": agreement.org_id, "version_id": version.id,
                  "agreement_id": agreement.id, "entry_id": uuid.UUID(c["entry_id"]), "entry_name": c["name"],
                  "change_kind": ChangeKind(c["kind"]), "authorisation": agreement.subprocessor_authorisation,
                  "notice_days": days, "notified_at": now, "deadline": deadline, "decided_by": ""}
                 for c in noticed]
    if rows:
        await session.execute(insert(ChangeAuthorisation), rows)
    return deadlines if noticed else {}


async def _notify(session: AsyncSession, *, actor: Actor, version: ListVersion, clients: list[Agreement],
                  deadlines: dict[uuid.UUID, dt.datetime], base_url: str) -> None:
    """One notice per client (grouped by deadline, which is what differs between them) and one to the public."""
    link = f"{base_url}/subprocessors/versions/{version.number}/respond"
    groups: dict[dt.date | None, list[Agreement]] = defaultdict(list)
    for agreement in clients:
        deadline = deadlines.get(agreement.org_id)
        # The last day to object: a deadline at midnight ends the day before.
        groups[(deadline - dt.timedelta(microseconds=1)).date() if deadline else None].append(agreement)
    for deadline_day, members in groups.items():
        content = catalog.subprocessor_change(version=version.number, effective_date=version.effective_date,
                                              objection_deadline=deadline_day, changes=version.changes, link=link)
        await notify(session, actor=actor, content=content, orgs=[a.org for a in members], subject=version)
    public = catalog.subprocessor_change(version=version.number, effective_date=version.effective_date,
                                         objection_deadline=None, changes=version.changes,
                                         link=f"{base_url}/subprocessors/versions/{version.number}")
    await notify(session, actor=actor, content=public, orgs=[], include_public=True, subject=version)
