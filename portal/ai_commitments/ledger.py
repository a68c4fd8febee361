"""The ledger of AI data-use commitments (vendor legal and owners): drafts, publishing, the chain of hashes, and
the version in force on a day.

Invariants:
- only a checked document (``document.clean``) is stored, and every model provider it names is a registered
  sub-processor, by name or legal entity, in the newest published list (legal requirement 56): a new provider goes
  through the sub-processor change workflow first;
- publishing gives the next number, the effective date (not before the previous version's, and not before the day of
  publishing: no promise is ever recorded as in effect before anyone could read it), the reason, the field
  changes against the previous version, whether they widen it, and ``sha256`` over the canonical JSON of number,
  effective date, reason, document and the previous version's hash, so the versions form a chain anyone can recompute;
- versions take effect in number order; which one applies to a client (acceptance of expanding versions) is decided
  per client in ``standing``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.ai_commitments import document as commitments
from portal.ai_commitments.models import CommitmentVersion, VersionStatus
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.subprocessors import registry
from portal.subprocessors.entries import sha256_of

GENESIS = "0" * 64
MAX_REASON = 4000


def chain_hash(number: int, effective_date: dt.date, reason: str, document: Mapping[str, Any],
               previous: str) -> str:
    """The SHA-256 a version is published with (and a verifier recomputes from the public JSON)."""
    return sha256_of({"number": number, "effective_date": effective_date.isoformat(), "reason": reason,
                      "document": document, "previous_sha256": previous})


async def registered_providers(session: AsyncSession) -> set[str]:
    """Names and legal entities of the sub-processors on the newest published list, case-folded."""
    latest = await registry.latest_version(session)
    names: set[str] = set()
    for entry in registry.entries_of(latest):
        names |= {str(entry.get(key) or "").strip().casefold() for key in ("name", "legal_entity")}
    return names - {""}


async def save_draft(session: AsyncSession, *, actor: Actor, raw: Mapping[str, Any]) -> CommitmentVersion:
    """Store a checked draft (a new one each time; drafts are working copies, nothing binds to them)."""
    actor.require_vendor(Permission.MANAGE_TEMPLATES)
    checked = commitments.clean(raw)
    registered = await registered_providers(session)
    unknown = sorted(name for name in commitments.providers_named(checked) if name.casefold() not in registered)
    if unknown:
        message = (f"{', '.join(unknown)} must be a registered sub-processor first: add it to the sub-processor "
                   "list, which notifies clients and lets them object, then name it here.")
        raise InvalidInput(message, fields={"providers": message})
    draft = CommitmentVersion(id=uuid.uuid4(), status=VersionStatus.DRAFT, document=checked, created_by=actor.label)
    session.add(draft)
    await session.flush()
    await audit.record(session, actor=actor, tag="ai_commitments:drafted", subject=draft, data={})
    return draft


async def versions(session: AsyncSession) -> list[CommitmentVersion]:
    """Published versions, oldest first."""
    return list((await session.execute(select(CommitmentVersion).where(
        CommitmentVersion.status == VersionStatus.PUBLISHED).order_by(CommitmentVersion.number))).scalars())


async def latest(session: AsyncSession) -> CommitmentVersion | None:
    found = await versions(session)
    return found[-1] if found else None


async def in_force_on(session: AsyncSession, day: dt.date) -> CommitmentVersion | None:
    """The newest published version whose effective date has come."""
    return (await session.execute(select(CommitmentVersion).where(
        CommitmentVersion.status == VersionStatus.PUBLISHED, CommitmentVersion.effective_date <= day)
        .order_by(CommitmentVersion.number.desc()).limit(1))).scalar_one_or_none()


async def drafts(session: AsyncSession, *, actor: Actor) -> list[CommitmentVersion]:
    """Unpublished drafts, newest first (vendor staff)."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    return list((await session.execute(select(CommitmentVersion).where(
        CommitmentVersion.status == VersionStatus.DRAFT).order_by(CommitmentVersion.created_at.desc()))).scalars())


async def version_of(session: AsyncSession, *, actor: Actor, version_id: str) -> CommitmentVersion:
    """A draft or a published version by id, for vendor staff (404 otherwise)."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    try:
        found = await session.get(CommitmentVersion, uuid.UUID(version_id))
    except ValueError:
        found = None
    if found is None:
        raise NotFound()
    return found


def field_changes(old: Any, new: Any, path: str = "") -> dict[str, dict[str, Any]]:
    """Every leaf that differs between two documents, by dotted path."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        found: dict[str, dict[str, Any]] = {}
        for key in sorted(set(old) | set(new), key=str):
            found |= field_changes(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return found
    return {} if old == new else {path: {"before": old, "after": new}}


async def publish(session: AsyncSession, *, actor: Actor, draft_id: str, effective_date: str,
                  reason: str, now: dt.datetime | None = None) -> CommitmentVersion:
    """Publish a draft as the next version of the ledger (``now``: when, for loading history; else now)."""
    actor.require_vendor(Permission.MANAGE_TEMPLATES)
    now = now or utcnow()
    draft = await version_of(session, actor=actor, version_id=draft_id)
    if draft.status is VersionStatus.PUBLISHED:
        raise InvalidInput(f"This draft is already published as version {draft.number}.")
    previous = await latest(session)
    errors: dict[str, str] = {}
    try:
        day = dt.date.fromisoformat(effective_date.strip())
        if previous is not None and previous.effective_date is not None and day < previous.effective_date:
            errors["effective_date"] = (f"Versions take effect in order: not before {previous.effective_date} "
                                        f"(version {previous.number}).")
        elif day < now.date():
            errors["effective_date"] = (f"A version cannot take effect before it is published: choose "
                                        f"{now.date().isoformat()} or later.")
    except ValueError:
        errors["effective_date"] = "Enter the effective date as YYYY-MM-DD."
        day = now.date()
    reason = reason.strip()
    if not reason:
        errors["reason"] = "Say why the commitments change: clients read it."
    elif len(reason) > MAX_REASON:
        errors["reason"] = f"The reason is longer than {MAX_REASON} characters."
    if errors:
        raise InvalidInput("Nothing was published. " + " ".join(errors.values()), fields=errors)
    kind = commitments.classify(previous.document if previous else None, draft.document)
    number = (previous.number or 0) + 1 if previous else 1
    prior_hash = previous.sha256 if previous else GENESIS
    draft.number, draft.status, draft.effective_date, draft.reason = number, VersionStatus.PUBLISHED, day, reason
    draft.changes = field_changes(previous.document, draft.document) if previous else {}
    draft.expanding, draft.expanding_reasons = kind.expanding, list(kind.reasons)
    draft.previous_sha256 = prior_hash
    draft.sha256 = chain_hash(number, day, reason, draft.document, prior_hash)
    draft.published_by, draft.published_at = actor.label, now
    await session.flush()
    await audit.record(session, actor=actor, tag="ai_commitments:published", subject=draft, data={
        "number": number, "effective_date": day.isoformat(), "sha256": draft.sha256, "expanding": kind.expanding,
        "reasons": list(kind.reasons)})
    return draft
