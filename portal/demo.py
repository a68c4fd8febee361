"""``portal demo``: a European AI SaaS vendor with three client organisations and their people, its sub-processor
list with an upcoming change and an objection, a published AI commitments version, its published DPA template, an
executed agreement with its evidence, an open re-signing campaign, and a closed breach incident with its notices
and acknowledgements.

Everything is created through the same services the pages use (the confirmed public subscriber excepted: its
confirmation link only ever exists in a mailbox), so the demo's audit trail is real. Each capability
adds its part here as it lands. Loading twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

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
from portal.agreements import service as agreements
from portal.agreements.events import Origin
from portal.ai_commitments import acceptance as ai_acceptance
from portal.ai_commitments import instructions as ai_instructions
from portal.ai_commitments import ledger as ai_ledger
from portal.ai_commitments import rollout as ai_rollout
from portal.breaches import incidents, notices
from portal.breaches.models import UNKNOWN
from portal.db import utcnow
from portal.dpa import fields, profile, templates
from portal.dpa.default_template import build_docx, default_text, parse
from portal.notifications import catalog
from portal.notifications.catalog import Topic
from portal.notifications.models import PublicSubscriber, SubscriberStatus
from portal.notifications.service import notify
from portal.notifications.subscriptions import set_member_topics
from portal.settings import Settings
from portal.signing import access, campaign, ceremony, preparation
from portal.subprocessors import publishing, registry, responses

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


async def load_demo(session: AsyncSession, settings: Settings) -> list[str]:
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
    await _notices(session, actor, clients, settings.base_url)
    await _subprocessors(session, actor, clients, settings.base_url)
    await _ai_commitments(session, actor)
    await _dpa_template(session, actor)
    await _signed_agreements(session, clients, settings)
    await _closed_breach(session, clients, settings)
    await _widened_ai_commitments(session, actor, clients, settings)
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


# ---------------------------------------------------------------- the sub-processor registry

def _entry(name: str, legal_entity: str, address: str, contact: str, purpose: str, processing: str,
           categories: str, locations: str, **extra: str) -> dict[str, str]:
    return {"name": name, "legal_entity": legal_entity, "address": address, "contact_name": contact.split("|")[0],
            "contact_position": contact.split("|")[1], "contact_email": contact.split("|")[2], "purpose": purpose,
            "processing": processing, "data_categories": categories, "locations": locations,
            "flow_down_reference": f"Data processing agreement with {legal_entity}", "flow_down_date": "2025-06-02",
            **extra}


FIRST_LIST = (
    _entry("Hetzner Online", "Hetzner Online GmbH", "Industriestr. 25, 91710 Gunzenhausen, Germany",
           "Data Protection Officer|DPO|data-protection@hetzner.example", "Hosting of the production platform",
           "Runs the servers and storage of the platform in its German data centres; responsible for physical and "
           "network security, not for the application.", "All customer data", "DE"),
    _entry("Mistral AI", "Mistral AI SAS", "15 rue des Halles, 75001 Paris, France",
           "Privacy team|Legal|privacy@mistral.example", "Large language model inference",
           "Processes prompts and returns completions through its EU API with zero data retention; does not train "
           "on the data.", "Prompts, Model outputs", "FR", ai_model_provider="on"),
    _entry("Relay Mail Services", "Relay Mail Services GmbH", "Am Hafen 4, 20457 Hamburg, Germany",
           "Jana Post|Privacy officer|privacy@relaymail.example", "Transactional email",
           "Sends notification emails on our behalf; keeps delivery logs for 30 days.",
           "Names, Email addresses", "DE"),
    _entry("Functional Software (Sentry)", "Functional Software, Inc.",
           "45 Fremont Street, San Francisco, CA 94105, USA",
           "Privacy team|Legal|privacy@sentry.example", "Error monitoring",
           "Receives error reports of the platform, scrubbed of request bodies; retained for 90 days.",
           "Technical identifiers, IP addresses", "US", transfer_mechanism="dpf"),
)


async def _subprocessors(session: AsyncSession, actor: Actor, clients: list[Organisation], base_url: str) -> None:
    """Agreements for the three clients (one with a longer notice period, one with specific authorisation), a
    list published last year, a change announced today with an upcoming effective date, and Acme's objection."""
    terms = (("general", ""), ("general", "45"), ("specific", "30"))
    for org, (authorisation, days) in zip(clients, terms, strict=True):
        await agreements.record_agreement(session, actor=actor, org=org, data=agreements.AgreementInput(
            reference=f"DPA {org.name} (signed PDF, 2025)", signed_on="2025-06-16", authorisation=authorisation,
            notice_days=days))
    last_year = dt.datetime(2025, 9, 1, 9, 0, tzinfo=dt.UTC)
    for data in FIRST_LIST:
        await publishing.draft_entry(session, actor=actor, raw=data)
    await publishing.publish(session, actor=actor, effective_date="2025-10-20", summary="Our first published list.",
                             default_notice_days=30, base_url=base_url, now=last_year)
    # Copperleaf's agreement needs explicit approval (specific authorisation): Nils gave it within days; the
    # others stayed silent, which their general authorisation counts as consent once the deadline passed.
    copperleaf = clients[2]
    nils = await _member(session, copperleaf, "nils.legal@copperleaf.example")
    for row in await responses.authorisations_of(session, copperleaf):
        await responses.approve(session, actor=nils, org=copperleaf, authorisation_id=str(row.id),
                                now=last_year + dt.timedelta(days=3))
    await responses.apply_deadlines(session)

    copy = await registry.working_copy(session)
    relay = next(item.entry for item in copy.entries if item.entry["name"] == "Relay Mail Services")
    await publishing.draft_entry(session, actor=actor, replaces=relay["id"], raw=_entry(
        "Postwerk Mail", "Postwerk Mail GmbH", "Lindenallee 8, 50968 Koeln, Germany",
        "Tobias Brief|Data protection|privacy@postwerk.example", "Transactional email",
        "Sends notification emails on our behalf; keeps delivery logs for 14 days.", "Names, Email addresses", "DE"))
    await publishing.draft_entry(session, actor=actor, raw=_entry(
        "Vectorly", "Vectorly Inc.", "500 Howard Street, San Francisco, CA 94105, USA",
        "Morgan Lee|Privacy counsel|privacy@vectorly.example", "Embedding search for document retrieval",
        "Stores embeddings of customer documents to answer similarity queries; no training on the data.",
        "Document embeddings", "US", transfer_mechanism="scc_module_3",
        transfer_details="Module 3 clauses signed 2025-10-01; transfer impact assessment on file.",
        ai_model_provider="on"))
    planned = await publishing.plan(session, default_notice_days=30)
    await publishing.publish(session, actor=actor, effective_date=planned.earliest_effective.isoformat(),
                             summary="Postwerk Mail replaces Relay Mail Services; Vectorly is added for search.",
                             default_notice_days=30, base_url=base_url)
    acme = clients[0]
    pia = await _member(session, acme, "pia.privacy@acme-logistics.example")
    vectorly = next(row for row in await responses.authorisations_of(session, acme) if row.entry_name == "Vectorly")
    await responses.object_to(session, actor=pia, org=acme, authorisation_id=str(vectorly.id),
                              reason="Our customers' documents must stay in the EEA; we cannot accept a US vector "
                                     "store without an EU region.")


async def _member(session: AsyncSession, org: Organisation, email: str) -> Actor:
    user = await user_by_email(session, email)
    assert user is not None
    membership = await membership_of(session, org=org, user_id=user.id)
    assert membership is not None
    return Actor.for_member(membership)


def _commitment(retention: int | str, providers: list[dict[str, object]], **overrides: str) -> dict[str, object]:
    return {"training_use": "none", "training_models": "", "vendor_retention_days": retention,
            "providers": providers, "locations": ["DE", "FR"] if providers else ["DE"],
            "human_review": "Only at the client's written request for support, by named support staff",
            "isolation": "Each client's data in its own encrypted store; never mixed into another client's answers",
            "ownership": "The client owns its inputs and the outputs generated for it",
            "client_controls": "Retention period, training opt-in (off by default), admin audit log", **overrides}


def _ai_commitments_v1() -> dict[str, Any]:
    mistral = [{"name": "Mistral AI SAS", "retention_days": "none", "abuse_monitoring_days": 0,
                "zero_data_retention": True}]
    return {"data_classes": {
        "prompts": _commitment(30, mistral), "outputs": _commitment(365, mistral), "files": _commitment(365, []),
        "embeddings": _commitment(365, []), "fine_tuning": _commitment("none", []),
        "feedback": _commitment(90, []), "telemetry": _commitment(30, [])},
        "features": [{"name": "Document assistant", "role": "deployer of Mistral's general-purpose model",
                      "upstream_provider": "Mistral AI SAS", "provider_documentation": "https://docs.mistral.ai",
                      "training_summary": "", "interacts_with_persons": True,
                      "disclosure": "Every answer is labelled 'AI assistant' and links to these commitments",
                      "generates_content": True, "marking": "Generated documents carry C2PA metadata",
                      "high_risk": False}]}


async def _ai_commitments(session: AsyncSession, actor: Actor) -> None:
    """Version 1 of the AI data-use commitments: no training on client data, Mistral AI with zero data retention."""
    draft = await ai_ledger.save_draft(session, actor=actor, raw=_ai_commitments_v1())
    await ai_ledger.publish(session, actor=actor, draft_id=str(draft.id), effective_date="2025-10-20",
                            reason="Our first published AI data-use commitments.",
                            now=dt.datetime(2025, 10, 20, 9, tzinfo=dt.UTC))


async def _widened_ai_commitments(session: AsyncSession, actor: Actor, clients: list[Organisation],
                                  settings: Settings) -> None:
    """Version 2 widens version 1 (feedback may train the answer ranking if a client opts in), so every client is
    asked to accept it: Acme did and switched training on feedback on, Brightwell declined, Copperleaf has not
    answered; the last two stay on version 1."""
    raw = _ai_commitments_v1()
    raw["data_classes"]["feedback"].update(training_use="customer_opt_in",
                                           training_models="The answer-ranking model, one per client")
    draft = await ai_ledger.save_draft(session, actor=actor, raw=raw)
    await ai_rollout.publish(session, actor=actor, draft_id=str(draft.id), settings=settings,
                             effective_date=utcnow().date().isoformat(),
                             reason="Clients may let their users' feedback improve the answer ranking.")
    acme = clients[0]
    ada = await _member(session, acme, "ada.admin@acme-logistics.example")
    await ai_acceptance.accept(session, actor=ada, org=acme, number="2", confirmed=True)
    await ai_instructions.record(session, actor=ada, org=acme, data_class="feedback", enabled=True,
                                 note="Approved by our DPO for the ranking of answers to our own staff.")
    brightwell = clients[1]
    bram = await _member(session, brightwell, "bram.admin@brightwell.example")
    await ai_acceptance.decline(session, actor=bram, org=brightwell, number="2",
                                reason="Patient feedback must not train any model; please confirm it stays excluded.")


async def _dpa_template(session: AsyncSession, actor: Actor) -> None:
    """The default DPA shipped with the portal, published as the vendor's first template version."""
    await profile.save_profile(session, actor=actor, raw=_vendor_details())
    draft = await templates.upload_default(session, actor=actor)
    await templates.publish(session, actor=actor, version_id=str(draft.id),
                            changelog="Our data processing agreement, based on the Commission's Art. 28(7) clauses.")


def _vendor_details() -> dict[str, str]:
    """The catalog's examples are the demo vendor's own details."""
    return {f.name: str(f.example) for f in profile.PROFILE_FIELDS}


def _client_details(org: Organisation, admin: str, contact_for_changes: str, contact_for_incidents: str,
                    ) -> dict[str, str]:
    """The catalog's example processing description, with the client's own party details and contacts."""
    values = {f.name: str(f.example) for f in fields.FIELDS if f.name.split(".")[0] in {"client", "processing"}}
    values |= {"client.name": org.name, "client.contact_name": admin, "client.contact_email":
               f"{admin.split()[0].lower()}@{org.slug}.example", "agreement.effective_date": "2026-01-01",
               "agreement.service_agreement": "Nordlicht Platform Subscription Agreement of 16 June 2025",
               "contacts.subprocessor_changes": contact_for_changes, "contacts.incidents": contact_for_incidents}
    values["processing.has_sensitive"] = "yes"
    return values


async def _signed_agreements(session: AsyncSession, clients: list[Organisation], settings: Settings) -> None:
    """Acme signs version 1 in the portal (executed and sealed, with its evidence); Brightwell's is sent and not
    signed yet; then version 2 is published, which opens a re-signing campaign: Acme and Brightwell get it ready to
    sign, Copperleaf (agreement signed on paper) is asked for its details, and Brightwell's signatory has opened it."""
    acme, brightwell, _copperleaf = clients
    origin = Origin(ip="198.51.100.20", user_agent="Mozilla/5.0 (demo)", auth_method="password")
    ada = await _member(session, acme, "ada.admin@acme-logistics.example")
    sigrid = await _member(session, acme, "sigrid.signatory@acme-logistics.example")
    lena = await _member(session, await _vendor(session), "lena.legal@nordlicht-ai.example")
    acme_details = _client_details(acme, "Ada Admin", "Pia Privacy, DPO, pia.privacy@acme-logistics.example",
                                   "Sven Security, CISO, sven.security@acme-logistics.example")
    acme_draft = await preparation.save_draft(session, actor=ada, org=acme, origin=origin, settings=settings,
                                           data=preparation.DraftInput(details=acme_details,
                                                                    signatory_id=str(sigrid.user_id), terms={}))
    await preparation.send_for_signature(session, actor=ada, org=acme, agreement_id=str(acme_draft.id), origin=origin,
                                      settings=settings)
    await ceremony.sign(session, actor=sigrid, org=acme, agreement_id=str(acme_draft.id), origin=origin,
                        settings=settings, vendor_name=VENDOR_NAME, data=ceremony.SignInput(
                            "Sigrid Signatory", "Managing Director", acme_draft.document_sha256, True, True))
    await ceremony.countersign(session, actor=lena, org=acme, agreement_id=str(acme_draft.id), origin=origin,
                               settings=settings, vendor_name=VENDOR_NAME, data=ceremony.CountersignInput(
                                   "Lena Legal", "General Counsel", acme_draft.document_sha256, True))
    bram = await _member(session, brightwell, "bram.admin@brightwell.example")
    bright_draft = await preparation.save_draft(session, actor=bram, org=brightwell, origin=origin, settings=settings,
                                             data=preparation.DraftInput(details=_client_details(
                                                 brightwell, "Bram de Vries", "Eva Jansen, DPO, eva.dpo@brightwell"
                                                 ".example", "Eva Jansen, DPO, eva.dpo@brightwell.example"),
                                                 signatory_id=str(bram.user_id), terms={}))
    await preparation.send_for_signature(session, actor=bram, org=brightwell, agreement_id=str(bright_draft.id),
                                      origin=origin, settings=settings)
    draft = await templates.upload(session, actor=lena, filename="dpa-v2.docx", data=_second_version())
    await campaign.publish_and_roll_out(session, actor=lena, version_id=str(draft.id), settings=settings,
                                        changelog="Annex III: a yearly review of the security measures with each "
                                                  "client.")
    opened = await access.open_agreement(session, brightwell)
    assert opened is not None
    await preparation.record_view(session, actor=bram, org=brightwell, agreement=opened, origin=origin)


def _second_version() -> bytes:
    """The default DPA with one more sentence in Annex III: a real second version with a redline."""
    heading = "# Annex III \N{EN DASH} Technical and organisational measures\n\n"
    text = default_text().replace(heading, heading + "The Processor reviews these measures with the Customer once a "
                                  "year and records the outcome in the portal.\n\n", 1)
    return build_docx(parse(text))


async def _closed_breach(session: AsyncSession, clients: list[Organisation], settings: Settings) -> None:
    """A breach at a sub-processor earlier today: Acme and Brightwell notified (initial, then final) well within
    their targets, Acme's security contact acknowledged both, and the incident closed with its rationale."""
    acme, brightwell, _copperleaf = clients
    sami = await _member(session, await _vendor(session), "sami.security@nordlicht-ai.example")
    aware = utcnow().replace(second=0, microsecond=0) - dt.timedelta(hours=10)
    incident = await incidents.open_incident(session, actor=sami, data=incidents.IncidentInput(
        title="Email delivery logs stored unencrypted at our mail provider", aware_at=aware.isoformat(),
        detected_at=(aware - dt.timedelta(hours=2)).isoformat(),
        occurred_at=(aware - dt.timedelta(hours=8)).isoformat(),
        natures=("confidentiality",), summary="For six hours our email relay provider stored message logs (recipient "
        "addresses and subjects of notification emails) without encryption at rest. No unauthorised access was "
        "found.", source="subprocessor", subprocessor_name="Relay Mail Services GmbH",
        subprocessor_notified_at=(aware - dt.timedelta(minutes=40)).isoformat(),
        contact_point="Security operations, security@nordlicht-ai.example, +49 30 5557 0199 (24/7)",
        internal_notes="Provider ticket RMS-2211; their KMS rotation job failed silently."))
    await incidents.add_clients(session, actor=sami, incident=incident, default_notice_days=30,
                                selection=incidents.Selection(org_ids=(str(acme.id), str(brightwell.id))))
    figures = {acme.id: ("about 40 employees", "about 310 email log lines"),
               brightwell.id: ("12 employees", "85 email log lines")}
    for org in (acme, brightwell):
        subjects, records = figures[org.id]
        raw = {"nature": "Email delivery logs (recipient addresses and subjects) were stored without encryption at "
                         "rest for six hours.", "categories": "The client's users who received notification "
               "emails; email addresses and email subjects", "approximate_subjects": subjects,
               "approximate_records": records, "likely_consequences": UNKNOWN, "measures": "The provider encrypted "
               "the logs and now checks its configuration daily.", "contact_point": incident.contact_point}
        await notices.send_notice(session, actor=sami, incident=incident, org=org, phase="initial", raw=raw,
                                  settings=settings)
        final = {**raw, "likely_consequences": "None expected: the logs were not accessed, as the provider's access "
                                               "records show."}
        await notices.send_notice(session, actor=sami, incident=incident, org=org, phase="final", raw=final,
                                  settings=settings)
    sven = await _member(session, acme, "sven.security@acme-logistics.example")
    for sent in await notices.notices_to(session, acme, incident):
        await notices.acknowledge_notice(session, actor=sven, org=acme, notice_id=str(sent.id))
    await incidents.close_incident(session, actor=sami, incident=incident, closure="breach_handled",
                                   rationale="Both affected clients were notified; the provider fixed the cause and "
                                             "its access records show no access to the logs.")


async def _vendor(session: AsyncSession) -> Organisation:
    vendor = await vendor_org(session)
    assert vendor is not None
    return vendor
