"""A client admin accepts, or declines with a reason, a version of the commitments that widens what applies to the
client.

Invariants (legal requirement 57):
- only the client's own admin answers (``GIVE_INSTRUCTIONS``), only for a published version that widens the
  version applying to the client, and only once each way; an acceptance needs the confirmation ticked and records
  who, when, the version's hash, what it widened (as the admin was shown it) and the confirmation's words; a
  decline records who, when and why;
- a decline changes nothing of what applies (as no answer) and does not stop a later acceptance; an acceptance
  ends the question: nothing else makes a widening version apply to a client;
- both are records the ORM refuses to change or delete, and both are audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.ai_commitments import ledger, standing
from portal.ai_commitments.document import classify
from portal.ai_commitments.models import Acceptance, CommitmentVersion, Decline
from portal.db import Base, utcnow
from portal.errors import InvalidInput, NotFound

STATEMENT = ("On behalf of {org}, I accept version {number} of the AI data-use commitments (SHA-256 {sha256}), "
             "including what it widens as listed, as our documented instruction.")
MAX_REASON = 2000


def statement_for(org: Organisation, number: int, sha256: str) -> str:
    return STATEMENT.format(org=org.name, number=number, sha256=sha256)


@dataclass(frozen=True)
class Question:
    """A widening version the client may answer, and what it widens against the client's version."""

    version: CommitmentVersion
    number: int
    widening: list[str]
    position: standing.Standing


async def _question(session: AsyncSession, *, actor: Actor, org: Organisation, number: str) -> Question:
    """The widening version ``number`` for ``org``'s admin to answer, or why there is nothing to answer."""
    if actor.org is None or actor.org.id != org.id:
        raise NotFound()
    actor.require(Permission.GIVE_INSTRUCTIONS)
    version = next((v for v in await ledger.versions(session) if str(v.number) == str(number).strip()), None)
    if version is None or version.number is None:
        raise InvalidInput(f"There is no published version {number} of the AI commitments.",
                           fields={"version": "Choose a published version."})
    position = await standing.standing_of(session, org)
    if version.number in position.acceptances:
        raise InvalidInput(f"{org.name} accepted version {version.number} already.")
    if version.number in {period.version.number for period in position.timeline}:
        raise InvalidInput(f"Version {version.number} already applies to {org.name} without acceptance: it does "
                           "not widen what applied before it.")
    if position.timeline and version.number < (position.timeline[-1].version.number or 0):
        raise InvalidInput(f"Version {version.number} is older than the version that applies to {org.name}.")
    base = position.timeline[-1].version.document if position.timeline else None
    return Question(version, version.number, list(classify(base, version.document).reasons), position)


async def _add_once(session: AsyncSession, row: Base, already: str) -> None:
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:  # a second press at the same moment: the first answer is the one on record
        raise InvalidInput(already) from None


async def accept(session: AsyncSession, *, actor: Actor, org: Organisation, number: str,
                 confirmed: bool) -> Acceptance:
    """Record ``org``'s acceptance of version ``number``: from then on (and its effective date) it applies."""
    asked = await _question(session, actor=actor, org=org, number=number)
    if not confirmed:
        message = "Tick the confirmation to accept: the acceptance is kept as your documented instruction."
        raise InvalidInput("Nothing was accepted. " + message, fields={"confirm": message})
    row = Acceptance(id=uuid.uuid4(), org_id=org.id, version_id=asked.version.id, number=asked.number,
                     sha256=asked.version.sha256, widening=asked.widening, accepted_by=actor.label,
                     accepted_at=utcnow(), statement=statement_for(org, asked.number, asked.version.sha256))
    await _add_once(session, row, f"{org.name} accepted version {asked.number} already.")
    await audit.record(session, actor=actor, tag="ai_commitments:accepted", subject=row, org_id=org.id, data={
        "number": asked.number, "sha256": row.sha256, "widening": asked.widening, "statement": row.statement})
    return row


async def decline(session: AsyncSession, *, actor: Actor, org: Organisation, number: str, reason: str) -> Decline:
    """Record that ``org`` does not accept version ``number``, and why; what applies to it stays as it is."""
    asked = await _question(session, actor=actor, org=org, number=number)
    if asked.number in asked.position.declines:
        raise InvalidInput(f"{org.name} declined version {asked.number} already; it can still accept it.")
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        message = ("Say why, so the vendor can answer: the reason is kept with the decline." if not reason
                   else f"At most {MAX_REASON} characters.")
        raise InvalidInput("Nothing was recorded. " + message, fields={"reason": message})
    row = Decline(id=uuid.uuid4(), org_id=org.id, version_id=asked.version.id, number=asked.number, reason=reason,
                  declined_by=actor.label, declined_at=utcnow())
    await _add_once(session, row, f"{org.name} declined version {asked.number} already.")
    await audit.record(session, actor=actor, tag="ai_commitments:declined", subject=row, org_id=org.id,
                       data={"number": asked.number, "reason": reason, "widening": asked.widening})
    return row
