"""The vendor's own details in every agreement: its party block in Annex I, its contacts, the services and the
governing law (the catalog fields supplied by ``Source.VENDOR``).

Invariants: one row; every field is required before any agreement can be rendered for signature (a document with
the processor's name missing would be signed with a gap); changing the profile never touches documents already
rendered, which keep the values they were rendered with.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.db import utcnow
from portal.dpa.fields import FIELDS, Field, Source
from portal.dpa.models import VendorProfile
from portal.errors import InvalidInput

PROFILE_FIELDS: tuple[Field, ...] = tuple(f for f in FIELDS if f.source is Source.VENDOR)
MAX_LENGTH = 500


async def profile_values(session: AsyncSession) -> dict[str, str]:
    """The stored values by catalog name (empty strings for what is not filled in yet)."""
    row = await session.get(VendorProfile, 1)
    stored = row.values if row is not None else {}
    return {f.name: str(stored.get(f.name, "")) for f in PROFILE_FIELDS}


def missing(values: Mapping[str, str]) -> list[Field]:
    return [f for f in PROFILE_FIELDS if not values.get(f.name, "").strip()]


async def save_profile(session: AsyncSession, *, actor: Actor, raw: Mapping[str, str]) -> dict[str, str]:
    """Store the vendor's details; every field is required."""
    actor.require_vendor(Permission.MANAGE_TEMPLATES)
    values = {f.name: raw.get(f.name, "").strip() for f in PROFILE_FIELDS}
    errors = {f.name: "Required." for f in missing(values)}
    errors |= {name: f"At most {MAX_LENGTH} characters." for name, value in values.items() if len(value) > MAX_LENGTH}
    if errors:
        raise InvalidInput("Nothing was saved: every field appears in the agreements, so each one is needed.",
                           fields=errors)
    row = await session.get(VendorProfile, 1)
    if row is None:
        row = VendorProfile(id=1)
        session.add(row)
    row.values = values
    row.updated_by = actor.label
    row.updated_at = utcnow()
    await session.flush()
    await audit.record(session, actor=actor, tag="vendor_profile:saved", subject=row, data={"values": values})
    return values
