"""Reading the registry: versions, the list in force on a day, upcoming changes, and the working copy with drafts.

Everything here is a read; ``publishing.py`` writes versions and ``responses.py`` records clients' answers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.errors import NotFound
from portal.subprocessors.entries import Entry, sorted_entries
from portal.subprocessors.models import DraftChange, DraftKind, ListVersion


async def versions(session: AsyncSession) -> list[ListVersion]:
    """Every published version, oldest first."""
    return list((await session.execute(select(ListVersion).order_by(ListVersion.number))).scalars())


async def latest_version(session: AsyncSession) -> ListVersion | None:
    return (await session.execute(
        select(ListVersion).order_by(ListVersion.number.desc()).limit(1)
    )).scalar_one_or_none()


async def latest_number(session: AsyncSession) -> int:
    """The number of the newest version (0 before the first): cheap, for caches and ETags."""
    return int((await session.execute(select(func.coalesce(func.max(ListVersion.number), 0)))).scalar_one())


async def version_by_number(session: AsyncSession, number: int | str) -> ListVersion:
    try:
        wanted = int(number)
    except (TypeError, ValueError):
        raise NotFound() from None
    found = (await session.execute(select(ListVersion).where(ListVersion.number == wanted))).scalar_one_or_none()
    if found is None:
        raise NotFound()
    return found


async def in_force_on(session: AsyncSession, day: dt.date) -> ListVersion | None:
    """The version in force on ``day``: the newest whose effective date has come (versions take effect in order)."""
    return (await session.execute(
        select(ListVersion).where(ListVersion.effective_date <= day)
        .order_by(ListVersion.number.desc()).limit(1)
    )).scalar_one_or_none()


async def upcoming_after(session: AsyncSession, day: dt.date) -> list[ListVersion]:
    """Published versions not yet in force on ``day``, oldest first."""
    return list((await session.execute(
        select(ListVersion).where(ListVersion.effective_date > day).order_by(ListVersion.number)
    )).scalars())


def entries_of(version: ListVersion | None) -> list[Entry]:
    return list(version.document["entries"]) if version is not None else []


@dataclass(frozen=True)
class WorkingEntry:
    """An entry of the working copy: the newest published list with the drafts applied."""

    entry: Entry
    draft: DraftChange | None  # the draft that adds, changes or removes it, if any
    published: Entry | None  # as in the newest version (None for a drafted addition or replacement)
    replaced_by: DraftChange | None = None  # the drafted replacement that removes it

    @property
    def removed(self) -> bool:
        return self.replaced_by is not None or (self.draft is not None and self.draft.kind is DraftKind.REMOVE)


@dataclass(frozen=True)
class WorkingCopy:
    base: ListVersion | None
    entries: list[WorkingEntry]
    drafts: list[DraftChange]

    def find(self, entry_id: str | uuid.UUID) -> WorkingEntry:
        for item in self.entries:
            if item.entry["id"] == str(entry_id):
                return item
        raise NotFound()

    @property
    def ids(self) -> list[str]:
        return [item.entry["id"] for item in self.entries if not item.removed]

    def after_drafts(self) -> list[Entry]:
        """The list publishing the drafts would produce."""
        return sorted_entries(item.entry for item in self.entries if not item.removed)


async def drafts(session: AsyncSession) -> list[DraftChange]:
    return list((await session.execute(select(DraftChange).order_by(DraftChange.created_at))).scalars())


async def working_copy(session: AsyncSession) -> WorkingCopy:
    base = await latest_version(session)
    pending = await drafts(session)
    by_entry = {str(d.entry_id): d for d in pending}
    replacing = {str(d.replaces_entry_id): d for d in pending if d.kind is DraftKind.REPLACE}
    items: list[WorkingEntry] = []
    for entry in entries_of(base):
        draft = by_entry.pop(entry["id"], None)
        current = draft.data if draft is not None and draft.kind is DraftKind.MODIFY else entry
        items.append(WorkingEntry(current, draft, entry, replacing.get(entry["id"])))
    items += [WorkingEntry(draft.data, draft, None) for draft in by_entry.values()]  # additions, replacements
    items.sort(key=lambda i: (i.entry["name"].lower(), i.entry["id"]))
    return WorkingCopy(base, items, pending)


def nested(entries: list[Entry]) -> list[tuple[Entry, int]]:
    """``entries`` with each sub-sub-processor under its parent, as (entry, depth) (legal requirement 29)."""
    children: dict[str, list[Entry]] = {}
    ids = {e["id"] for e in entries}
    roots: list[Entry] = []
    for entry in sorted_entries(entries):
        parent = entry.get("parent_id") or ""
        if parent and parent in ids:
            children.setdefault(parent, []).append(entry)
        else:
            roots.append(entry)
    out: list[tuple[Entry, int]] = []

    def walk(entry: Entry, depth: int, seen: frozenset[str]) -> None:
        out.append((entry, depth))
        for child in children.get(entry["id"], []):
            if child["id"] not in seen:
                walk(child, depth + 1, seen | {child["id"]})

    for root in roots:
        walk(root, 0, frozenset({root["id"]}))
    return out


def version_json(version: ListVersion, base_url: str) -> dict[str, Any]:
    """A version's metadata as feeds and the API show it."""
    return {"version": version.number, "announced_at": version.announced_at.astimezone(dt.UTC).isoformat(),
            "effective_date": version.effective_date.isoformat(), "sha256": version.sha256,
            "url": f"{base_url}/subprocessors/versions/{version.number}"}
