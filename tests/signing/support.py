"""Arranging agreements: the vendor's profile, a published default template, complete client details, and an
agreement taken through the ceremony with the real services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.accounts.service import membership_of
from portal.actors import Actor
from portal.agreements.events import Origin
from portal.agreements.models import Agreement
from portal.dpa import fields, profile, templates
from portal.dpa.models import TemplateVersion
from portal.settings import Settings
from portal.signing import ceremony, preparation
from tests.conftest import World

SYSTEM = Actor.system("test")
ORIGIN = Origin(ip="203.0.113.7", user_agent="pytest-browser/1.0", auth_method="password")


def vendor_profile_values() -> dict[str, str]:
    demo = fields.demo_context()
    values = {}
    for field in profile.PROFILE_FIELDS:
        node: Any = demo
        for part in field.name.split("."):
            node = node[part]
        values[field.name] = str(node)
    return values


def client_details(name: str = "Acme Logistics SE", **overrides: str) -> dict[str, str]:
    values = {
        "client.name": name, "client.address": "Am Sandtorkai 50, 20457 Hamburg, Germany",
        "client.registration_number": "Amtsgericht Hamburg HRB 178342", "client.contact_name": "Ada Admin",
        "client.contact_position": "Head of IT Procurement", "client.contact_email": "ada@acme.example",
        "client.dpo": "Pia Privacy, pia@acme.example", "agreement.effective_date": "2026-12-01",
        "agreement.service_agreement": "Platform Subscription Agreement of 16 June 2025",
        "processing.subject_matter": "Analysis of shipping documents", "processing.data_subjects": "Employees",
        "processing.personal_data": "Names, business contact details", "processing.nature": "Storage, analysis",
        "processing.purposes": "Providing the platform", "processing.duration": "Term of the Service Agreement",
        "processing.frequency": "Continuous", "processing.retention": "365 days after upload",
        "contacts.subprocessor_changes": "Pia Privacy, DPO, pia@acme.example",
        "contacts.incidents": "Sven Security, CISO, sven@acme.example, +49 40 5558 0100",
    }
    return {**values, **overrides}


async def published_template(world: World) -> TemplateVersion:
    """The default DPA published as version 1, and the vendor's profile filled in."""
    await profile.save_profile(world.session, actor=SYSTEM, raw=vendor_profile_values())
    draft = await templates.upload_default(world.session, actor=SYSTEM)
    version = await templates.publish(world.session, actor=SYSTEM, version_id=str(draft.id), changelog="First")
    await world.commit()
    return version


@dataclass
class Parties:
    org: Organisation
    admin: Membership
    signatory: Membership
    legal: Membership


async def loaded(world: World, member: Membership) -> Membership:
    """``member`` with its user, organisation and roles loaded, as the request edge has them."""
    org = await world.session.get_one(Organisation, member.org_id)
    found = await membership_of(world.session, org=org, user_id=member.user_id)
    assert found is not None
    return found


async def person(world: World, org: Organisation, role: Role, email: str, name: str) -> Membership:
    return await loaded(world, await world.person(org, role, email=email, name=name))


async def parties(world: World, name: str = "Acme Logistics SE") -> Parties:
    org = await world.client_org(name)
    slug = org.slug
    admin = await person(world, org, Role.ADMIN, f"admin@{slug}.example", "Ada Admin")
    signatory = await person(world, org, Role.SIGNATORY, f"signatory@{slug}.example", "Sigrid Signatory")
    legal = await person(world, await world.vendor(), Role.LEGAL, f"legal-{slug}@lumen.example", "Lea Legal")
    return Parties(org, admin, signatory, legal)


def actor(member: Membership) -> Actor:
    return Actor.for_member(member, ip=ORIGIN.ip)


async def sent_agreement(world: World, who: Parties, settings: Settings) -> Agreement:
    """A draft saved from complete details and sent to the signatory."""
    draft = await preparation.save_draft(world.session, actor=actor(who.admin), org=who.org, origin=ORIGIN,
                                      settings=settings, data=preparation.DraftInput(
                                          details=client_details(who.org.name),
                                          signatory_id=str(who.signatory.user_id), terms={}))
    sent = await preparation.send_for_signature(world.session, actor=actor(who.admin), org=who.org,
                                             agreement_id=str(draft.id), origin=ORIGIN, settings=settings)
    await world.commit()
    return sent


def sign_input(agreement: Agreement, **overrides: Any) -> ceremony.SignInput:
    values: dict[str, Any] = {"full_name": "Sigrid Signatory", "title": "Managing Director",
                              "document_sha256": agreement.document_sha256, "authority": True, "consent": True,
                              **overrides}
    return ceremony.SignInput(**values)


async def executed_agreement(world: World, who: Parties, settings: Settings,
                             vendor_name: str = "Lumen AI GmbH") -> Agreement:
    """An agreement sent, signed by the client's signatory and countersigned by vendor legal: executed and sealed."""
    agreement = await sent_agreement(world, who, settings)
    await ceremony.sign(world.session, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                        data=sign_input(agreement), origin=ORIGIN, settings=settings, vendor_name=vendor_name)
    await ceremony.countersign(world.session, actor=actor(who.legal), org=who.org, agreement_id=str(agreement.id),
                               data=ceremony.CountersignInput("Lea Legal", "General Counsel",
                                                              agreement.document_sha256, True),
                               origin=ORIGIN, settings=settings, vendor_name=vendor_name)
    await world.commit()
    return agreement
