"""A client's documented instructions on training: off unless the client's own admin switched it on.

Invariants (legal requirements 12, 55):
- training on a client's data is off for every data class until that client's admin records an instruction that
  switches it on; no version of the vendor's commitments changes a client's setting, whatever its training use says
  (``customer_opt_out`` included): the effective setting is the client's latest instruction, else off;
- an instruction can only switch training on where the commitments applying to the client allow it at all (not
  ``none``), and training stops where a later version no longer allows it, whatever the instruction said;
- instructions are append-only records with who, when, what and why; the ORM refuses to change or delete them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.ai_commitments import standing
from portal.ai_commitments.document import DATA_CLASSES
from portal.ai_commitments.models import CommitmentVersion, TrainingInstruction
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.tenancy import scoped


@dataclass(frozen=True)
class Setting:
    data_class: str
    label: str
    instructed: bool  # the client's latest instruction switched training on
    allowed: bool  # the commitments applying to the client allow training on the class at all
    instruction: TrainingInstruction | None  # the one in effect; None: never instructed, so off

    @property
    def enabled(self) -> bool:
        """Training happens only where the client switched it on and the commitments still allow it."""
        return self.instructed and self.allowed


def _allows(version: CommitmentVersion | None, data_class: str) -> bool:
    return version is not None and version.document["data_classes"][data_class]["training_use"] != "none"


async def history(session: AsyncSession, org: Organisation) -> list[TrainingInstruction]:
    """``org``'s instructions, newest first."""
    return list((await session.execute(scoped(
        select(TrainingInstruction).order_by(TrainingInstruction.given_at.desc(), TrainingInstruction.seq.desc()),
        TrainingInstruction, org))).scalars())


async def settings_of(session: AsyncSession, org: Organisation) -> list[Setting]:
    """Per data class, whether training on ``org``'s data is on: its latest instruction, within what the commitments
    applying to it allow (a version that stops training on a class stops it, whatever the instruction)."""
    latest: dict[str, TrainingInstruction] = {}
    for row in await history(session, org):
        latest.setdefault(row.data_class, row)
    applying = await standing.applying_to(session, org, utcnow().date())
    return [Setting(key, label, bool(latest[key].enabled) if key in latest else False, _allows(applying, key),
                    latest.get(key)) for key, label in DATA_CLASSES.items()]


async def record(session: AsyncSession, *, actor: Actor, org: Organisation, data_class: str, enabled: bool,
                 note: str) -> TrainingInstruction:
    """Record the client admin's instruction for one data class."""
    if actor.org is None or actor.org.id != org.id:
        raise NotFound()
    actor.require(Permission.GIVE_INSTRUCTIONS)
    errors: dict[str, str] = {}
    if data_class not in DATA_CLASSES:
        errors["data_class"] = "Choose a data class."
    note = note.strip()
    if not note:
        errors["note"] = "Say why: the instruction is kept as the documented instruction of Art. 28(3)(a) GDPR."
    elif len(note) > 2000:
        errors["note"] = "At most 2000 characters."
    in_force = await standing.applying_to(session, org, utcnow().date())
    if enabled and not errors and not _allows(in_force, data_class):
        errors["data_class"] = (f"The commitments applying to {org.name} do not use "
                                f"{DATA_CLASSES[data_class].lower()} for training at all, so there is nothing to "
                                "switch on.")
    if errors:
        raise InvalidInput("Nothing was recorded. " + " ".join(errors.values()), fields=errors)
    count = len(await history(session, org))
    row = TrainingInstruction(id=uuid.uuid4(), org_id=org.id, seq=count + 1, data_class=data_class, enabled=enabled,
                              note=note, given_by=actor.label, given_at=utcnow(),
                              commitments_version=in_force.number if in_force else None)
    session.add(row)
    await session.flush()
    await audit.record(session, actor=actor, tag="ai_instruction:recorded", subject=row, org_id=org.id,
                       data={"data_class": data_class, "training": "on" if enabled else "off", "note": note})
    return row
