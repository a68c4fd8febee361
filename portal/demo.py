"""``portal demo``: a European AI SaaS vendor with three client organisations and their people.

Everything is created through the same services the pages use (the confirmed public subscriber excepted: its
confirmation link only ever exists in a mailbox), so the demo's audit trail is real. Each capability
adds its part here as it lands. Loading twice changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.accounts.service import (
    add_membership,
    create_client_org,
    create_user,
    create_vendor_org,
    membership_of,
    user_by_email,
    vendor_org,
)
from portal.actors import Actor
from portal.db import utcnow
from portal.notifications import catalog
from portal.notifications.catalog import Topic
from portal.notifications.models import PublicSubscriber, SubscriberStatus
from portal.notifications.service import notify
from portal.notifications.subscriptions import set_member_topics

DEMO_PASSWORD = "demo-portal-2026"  # noqa: S105 - printed to the operator; demo data only
VENDOR_NAME = "Nordlicht AI GmbH"


@dataclass(frozen=True)
class DemoPerson:
    email: str
    name: str
    roles: tuple[Role, ...]


VENDOR_STAFF = (
    DemoPerson("olivia.owner@nordlicht-ai.example", "Olivia Owner", (Role.OWNER,)),
    DemoPerson("lena.legal@nordlicht-ai.example", "Lena Legal", (Role.LEGAL,)),
    DemoPerson("sami.security@nordlicht-ai.example", "Sami Security", (Role.SECURITY,)),
    DemoPerson("victor.viewer@nordlicht-ai.example", "Victor Viewer", (Role.VIEWER,)),
)

CLIENTS: dict[str, tuple[DemoPerson, ...]] = {
    "Acme Logistics SE": (
        DemoPerson("ada.admin@acme-logistics.example", "Ada Admin", (Role.ADMIN,)),
        DemoPerson("sigrid.signatory@acme-logistics.example", "Sigrid Signatory", (Role.SIGNATORY,)),
        DemoPerson("pia.privacy@acme-logistics.example", "Pia Privacy", (Role.PRIVACY_CONTACT,)),
        DemoPerson("sven.security@acme-logistics.example", "Sven Security", (Role.SECURITY_CONTACT,)),
        DemoPerson("max.member@acme-logistics.example", "Max Member", (Role.MEMBER,)),
    ),
    "Brightwell Health BV": (
        DemoPerson("bram.admin@brightwell.example", "Bram de Vries", (Role.ADMIN, Role.SIGNATORY)),
        DemoPerson("eva.dpo@brightwell.example", "Eva Jansen", (Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT)),
    ),
    "Copperleaf Retail AB": (
        DemoPerson("karin.admin@copperleaf.example", "Karin Lind", (Role.ADMIN,)),
        DemoPerson("nils.legal@copperleaf.example", "Nils Berg", (Role.SIGNATORY, Role.PRIVACY_CONTACT)),
    ),
}


async def _add_people(session: AsyncSession, actor: Actor, org: Organisation,
                      people: tuple[DemoPerson, ...]) -> None:
    for person in people:
        user = await create_user(session, email=person.email, name=person.name, password=DEMO_PASSWORD)
        await add_membership(session, actor=actor, org=org, user=user, roles=person.roles)


def login_lines() -> list[str]:
    lines = [f"password for every demo account: {DEMO_PASSWORD}", f"{VENDOR_NAME} (vendor):"]
    lines += [f"  {p.email:45} {', '.join(r.label for r in p.roles)}" for p in VENDOR_STAFF]
    for name, people in CLIENTS.items():
        lines.append(f"{name} (client):")
        lines += [f"  {p.email:45} {', '.join(r.label for r in p.roles)}" for p in people]
    return lines


async def load_demo(session: AsyncSession, base_url: str = "http://127.0.0.1:8000") -> list[str]:
    """Create the demo organisations and people unless a vendor already exists; return the logins to print."""
    if await vendor_org(session) is not None:
        return ["A vendor organisation exists already, so no demo data was added. Demo logins, if it is the demo:",
                *login_lines()]
    actor = Actor.system("demo")
    vendor = await create_vendor_org(session, actor=actor, name=VENDOR_NAME)
    await _add_people(session, actor, vendor, VENDOR_STAFF)
    clients = []
    for name, people in CLIENTS.items():
        org = await create_client_org(session, actor=actor, name=name)
        await _add_people(session, actor, org, people)
        clients.append(org)
    await _notices(session, actor, clients, base_url)
    return login_lines()


async def _notices(session: AsyncSession, actor: Actor, clients: list[Organisation], base_url: str) -> None:
    """A member's own topic subscription, a confirmed public subscriber, and a notice to every client, which the
    worker (inside ``portal serve`` on SQLite) delivers."""
    brightwell = clients[1]
    eva = await user_by_email(session, "eva.dpo@brightwell.example")
    assert eva is not None
    membership = await membership_of(session, org=brightwell, user_id=eva.id)
    assert membership is not None
    await set_member_topics(session, actor=Actor.for_member(membership), membership=membership,
                            topics=[Topic.DPA.value])
    session.add(PublicSubscriber(id=uuid.uuid4(), email="analyst@prospect.example",
                                 topics=[Topic.SUBPROCESSORS.value, Topic.AI_COMMITMENTS.value],
                                 status=SubscriberStatus.CONFIRMED, confirmed_at=utcnow()))
    await notify(session, actor=actor, orgs=clients, content=catalog.subprocessor_failure(
        subprocessor="Relay Mail Services GmbH",
        description="For six hours on 18 November our email relay provider stored message logs without "
                    "encryption at rest, contrary to its contract with us. No unauthorised access was found.",
        measures="The logs were encrypted and the provider's configuration is now checked daily.",
        link=f"{base_url}/notices"))
