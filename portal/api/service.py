"""What API tokens may read.

Invariants: a token reads its own organisation; a vendor token also reads every client organisation; anything
else answers 404 (through ``accounts.service.visible_org``), so another tenant's ids and names leak nothing.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts_service
from portal.accounts.models import Membership, Organisation
from portal.actors import Actor
from portal.errors import NotFound


def _own_org(actor: Actor) -> Organisation:
    if actor.org is None:
        raise NotFound()
    return actor.org


async def organisations(session: AsyncSession, *, actor: Actor) -> list[Organisation]:
    """Vendor tokens list every client organisation; a client token lists only its own."""
    own = _own_org(actor)
    if not own.is_vendor:
        return [own]
    return await accounts_service.all_clients(session)


async def organisation(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Organisation:
    """One organisation the token may see, else 404."""
    _own_org(actor)
    return await accounts_service.visible_org(session, actor=actor, org_id=org_id)


async def client_organisation(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                              own_only: bool = False) -> Organisation:
    """A client organisation the token may see (the vendor's own records of clients live elsewhere), else 404;
    with ``own_only``, only the token's own (changes a client makes itself, which a vendor token cannot)."""
    org = await organisation(session, actor=actor, org_id=org_id)
    if org.is_vendor or (own_only and (actor.org is None or actor.org.id != org.id)):
        raise NotFound()
    return org


async def organisation_members(session: AsyncSession, *, actor: Actor,
                               org_id: uuid.UUID | str) -> list[Membership]:
    """The members of an organisation the token may see (else 404), by name."""
    org = await organisation(session, actor=actor, org_id=org_id)
    return await accounts_service.members(session, org=org)
