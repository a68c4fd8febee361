"""A client admin accepts a version of the commitments that widens what applies to the client.

Invariants (legal requirement 57):
- only the client's own admin accepts (``GIVE_INSTRUCTIONS``), only a published version that widens the version
  applying to the client, once, and only with the confirmation ticked; the acceptance records who, when, the
  version's hash, what it widened (as the admin was shown it) and the confirmation's words;
- an acceptance is a record the ORM refuses to change or delete, and it is audited; nothing else makes a
  widening version apply to a client.
"""

from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.ai_commitments import ledger, standing
from portal.ai_commitments.document import classify
from portal.ai_commitments.models import Acceptance
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound

STATEMENT = ("On behalf of {org}, I accept version {number} of the AI data-use commitments (SHA-256 {sha256}), "
             "including what it widens as listed, as our documented instruction.")


def statement_for(org: Organisation, number: int, sha256: str) -> str:
    return STATEMENT.format(org=org.name, number=number, sha256=sha256)


async def accept(session: AsyncSession, *, actor: Actor, org: Organisation, number: str,
                 confirmed: bool) -> Acceptance:
    """Record ``org``'s acceptance of version ``number``."""
    if actor.org is None or actor.org.id != org.id:
        raise NotFound()
    actor.require(Permission.GIVE_INSTRUCTIONS)
    version = next((v for v in await ledger.versions(session) if str(v.number) == str(number).strip()), None)
    if version is None or version.number is None:
        raise InvalidInput(f"There is no published version {number} of the AI commitments.",
                           fields={"version": "Choose a published version."})
    position = await standing.standing_of(session, org)
    listed = {period.version.number for period in position.timeline}
    if version.number in position.acceptances:
        raise InvalidInput(f"{org.name} accepted version {version.number} already.")
    if version.number in listed:
        raise InvalidInput(f"Version {version.number} already applies to {org.name} without acceptance: it does "
                           "not widen what applied before it.")
    if position.timeline and version.number < (position.timeline[-1].version.number or 0):
        raise InvalidInput(f"Version {version.number} is older than the version that applies to {org.name}.")
    base = position.timeline[-1].version.document if position.timeline else None
    widening = list(classify(base, version.document).reasons)
    if not confirmed:
        message = "Tick the confirmation to accept: the acceptance is kept as your documented instruction."
        raise InvalidInput("Nothing was accepted. " + message, fields={"confirm": message})
    row = Acceptance(id=uuid.uuid4(), org_id=org.id, version_id=version.id, number=version.number,
                     sha256=version.sha256, widening=widening, accepted_by=actor.label, accepted_at=utcnow(),
                     statement=statement_for(org, version.number, version.sha256))
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:  # a second press at the same moment: the first acceptance is the one on record
        raise InvalidInput(f"{org.name} accepted version {version.number} already.") from None
    await audit.record(session, actor=actor, tag="ai_commitments:accepted", subject=row, org_id=org.id, data={
        "number": version.number, "sha256": version.sha256, "widening": widening, "statement": row.statement})
    return row
