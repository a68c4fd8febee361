"""Test data for the sub-processor registry: valid entries, agreements, drafting and publishing through the real
services, and the vendor and client people who do it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts_service
from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import Agreement
from portal.db import utcnow
from portal.subprocessors import publishing
from portal.subprocessors.models import ListVersion

BASE_URL = "http://testserver"
DEFAULT_DAYS = 30


def entry_data(name: str = "Hostwerk GmbH", **overrides: Any) -> dict[str, Any]:
    """A complete entry as a form or JSON body gives it (EEA location, flow-down contract recorded)."""
    slug = name.split()[0].lower()
    data: dict[str, Any] = {
        "name": name, "legal_entity": f"{name} (legal entity)", "address": "Hauptstr. 1, 10115 Berlin, Germany",
        "contact_name": "Dana Datenschutz", "contact_position": "DPO", "contact_email": f"privacy@{slug}.example",
        "purpose": f"{name}: hosting of the production platform",
        "processing": "Stores and serves all customer data; responsible for physical and network security only.",
        "data_categories": "Account data, Prompts and outputs", "locations": "DE",
        "transfer_mechanism": "", "transfer_details": "", "parent_id": "", "ai_model_provider": "",
        "flow_down_reference": f"DPA with {name} 2025-01", "flow_down_date": "2025-01-15", "services": "",
    }
    data.update(overrides)
    return data


async def loaded(session: AsyncSession, membership: Membership) -> Membership:
    """``membership`` with its user, roles and organisation loaded (what ``Actor.for_member`` reads)."""
    found = await accounts_service.membership_of(session, org=await session.get(Organisation, membership.org_id),
                                                 user_id=membership.user_id)
    assert found is not None
    return found


async def vendor_legal(world: Any, email: str = "lea.legal@lumen.example") -> Actor:
    """An actor for a vendor legal team member (who drafts, publishes and resolves)."""
    vendor = await world.vendor()
    membership = await world.person(vendor, Role.LEGAL, email=email, name="Lea Legal")
    return Actor.for_member(await loaded(world.session, membership))


async def client_person(world: Any, org: Organisation, *roles: Role, email: str) -> tuple[Membership, Actor]:
    membership = await world.person(org, *roles, email=email)
    full = await loaded(world.session, membership)
    return full, Actor.for_member(full)


async def agreement(world: Any, org: Organisation, *, days: int | None = None,
                    authorisation: str = "general", reference: str = "DPA 2025") -> Agreement:
    """Record an active agreement for ``org`` (as vendor staff would for one signed outside the portal)."""
    recorded = await agreements.record_agreement(
        world.session, actor=Actor.system("test"), org=org,
        data=agreements.AgreementInput(reference=reference, signed_on="2025-01-10", authorisation=authorisation,
                                       notice_days=str(days) if days else ""))
    await world.commit()
    return recorded


async def publish(world: Any, actor: Actor, *names_or_data: str | dict[str, Any],
                  effective: dt.date | None = None, now: dt.datetime | None = None,
                  days: int = DEFAULT_DAYS) -> ListVersion:
    """Draft an addition per name (or full entry dict) and publish them as the next version, committed.
    ``effective`` defaults to the earliest date the notice periods allow."""
    for item in names_or_data:
        data = entry_data(item) if isinstance(item, str) else item
        await publishing.draft_entry(world.session, actor=actor, raw=data)
    now = now or utcnow()
    if effective is None:
        planned = await publishing.plan(world.session, default_notice_days=days, now=now)
        effective = planned.earliest_effective
    version = await publishing.publish(world.session, actor=actor, effective_date=effective.isoformat(),
                                       summary="", default_notice_days=days, base_url=BASE_URL, now=now)
    await world.commit()
    return version
