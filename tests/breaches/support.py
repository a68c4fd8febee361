"""Arranging incidents: valid input for the register and for a client's notice, and clients with agreements."""

from __future__ import annotations

import datetime as dt
from typing import Any

from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.breaches import incidents
from portal.breaches.models import UNKNOWN, Incident
from tests.conftest import World
from tests.signing.support import loaded

SYSTEM = Actor.system("test")


def incident_input(**overrides: Any) -> incidents.IncidentInput:
    aware = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    values: dict[str, Any] = {
        "title": "Misdirected export of document metadata", "aware_at": aware.isoformat(),
        "detected_at": (aware - dt.timedelta(hours=1)).isoformat(), "occurred_at": "",
        "natures": ("confidentiality",), "summary": "An export job sent document metadata to the wrong tenant.",
        "source": "own", "subprocessor_name": "", "subprocessor_notified_at": "",
        "contact_point": "Security operations, security@lumen.example, +49 30 5557 0199",
        "internal_notes": "Root cause: a cache key without the tenant id. Ticket SEC-4411.",
    }
    values.update(overrides)
    return incidents.IncidentInput(**values)


def notice_input(subjects: str = "about 120", records: str = "about 480", **overrides: str) -> dict[str, str]:
    return {"nature": "Document titles and uploader names were visible to another customer's users.",
            "categories": "Employees of the client; names and document titles", "approximate_subjects": subjects,
            "approximate_records": records, "likely_consequences": UNKNOWN, "measures": "The export is disabled.",
            "contact_point": "Security operations, security@lumen.example", **overrides}


async def client_with_contact(world: World, name: str) -> tuple[Organisation, Membership]:
    """A client with an agreement in force and a security contact."""
    org = await world.client_org(name)
    await agreements.record_agreement(world.session, actor=SYSTEM, org=org, data=agreements.AgreementInput(
        reference=f"DPA {name}", signed_on="2025-06-01", authorisation="general", notice_days=""))
    await world.commit()
    contact = await loaded(world, await world.person(org, Role.SECURITY_CONTACT, email=f"security@{org.slug}.example",
                                                     name=f"{name} Security"))
    return org, contact


async def open_incident(world: World, **overrides: Any) -> Incident:
    incident = await incidents.open_incident(world.session, actor=SYSTEM, data=incident_input(**overrides))
    await world.commit()
    return incident


async def affect(session: Any, incident: Incident, *orgs: Organisation, everyone: bool = False) -> None:
    """Mark ``orgs`` (or every client with an agreement in force) as affected by ``incident``."""
    await incidents.add_clients(session, actor=SYSTEM, incident=incident, default_notice_days=30,
                                selection=incidents.Selection(everyone=everyone,
                                                              org_ids=tuple(str(org.id) for org in orgs)))
