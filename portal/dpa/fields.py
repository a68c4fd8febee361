"""The placeholder catalog: every name a DPA template may use, what fills it, and the demo values for previews.

Invariants:
- a template may reference only names from ``allowed_names()``; anything else is refused when it is uploaded, so
  a typo cannot reach a signed document as an empty gap;
- values are finished text (dates, lists and contacts already formatted) or whole numbers, so templates need no
  filters and the sandbox has nothing to call;
- lists are repeated with a fixed loop variable per list (``LOOPS``): ``{% for sp in subprocessors %}`` gives
  ``sp.name`` and the other row fields; a template may not pick its own variable name;
- ``demo_context()`` holds a value for every catalog name, so a preview never shows a gap.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Source(enum.StrEnum):
    """Who supplies a value (shown on the catalog page so the legal team knows what it can rely on)."""

    VENDOR = "vendor settings"
    CLIENT = "client admin, when filling the agreement details"
    NEGOTIATED = "the vendor's default, or the client's value where the vendor allows negotiation"
    REGISTRY = "the sub-processor registry (list version in force when the document is rendered)"
    LEDGER = "the AI commitments ledger (version in force when the document is rendered)"
    PORTAL = "the portal, when the document is rendered"
    EXECUTION = "the signing ceremony (empty until each party signs)"


@dataclass(frozen=True)
class Field:
    name: str  # as written in a template, e.g. "client.name" or "sp.locations"
    group: str
    description: str
    example: str | int
    source: Source


@dataclass(frozen=True)
class Loop:
    """A list a template repeats: ``{% for <variable> in <iterable> %}``, with one row per item."""

    variable: str
    iterable: str
    description: str


VENDOR = "Vendor (processor)"
CLIENT = "Client (controller)"
AGREEMENT = "Agreement"
PROCESSING = "Description of the processing (Annex II)"
TERMS = "Notice periods and options"
CONTACTS = "Contacts"
SUBPROCESSORS = "Sub-processors (Annex IV)"
AI = "AI data-use commitments (Annex V)"
SIGNATURES = "Signatures (Annex I)"
LAW = "Governing law"


def _party(prefix: str, group: str, source: Source, examples: dict[str, str]) -> tuple[Field, ...]:
    descriptions = {
        "name": "Registered legal name.",
        "address": "Registered address, one line.",
        "registration_number": "Company register and number, e.g. 'Amtsgericht Berlin HRB 123456'.",
        "contact_name": "Contact person for this agreement.",
        "contact_position": "The contact person's position.",
        "contact_email": "The contact person's email address.",
        "dpo": "Data protection officer (name and contact), or who acts for data protection where none is "
               "appointed.",
    }
    return tuple(Field(f"{prefix}.{key}", group, text, examples[key], source) for key, text in descriptions.items())


FIELDS: tuple[Field, ...] = (
    *_party("vendor", VENDOR, Source.VENDOR, {
        "name": "Nordlicht AI GmbH",
        "address": "Torstraße 120, 10119 Berlin, Germany",
        "registration_number": "Amtsgericht Charlottenburg HRB 245871 B",
        "contact_name": "Lena Legal",
        "contact_position": "General Counsel",
        "contact_email": "legal@nordlicht-ai.example",
        "dpo": "Dr. Jonas Weber, Data Protection Officer, dpo@nordlicht-ai.example",
    }),
    Field("vendor.privacy_contact", VENDOR, "Where the client sends instructions, objections and data protection "
          "questions.", "Privacy team, privacy@nordlicht-ai.example", Source.VENDOR),
    Field("vendor.security_contact", VENDOR, "Where the client reports security concerns and reaches the vendor "
          "about an incident, around the clock.", "Security operations, security@nordlicht-ai.example, "
          "+49 30 5557 0199 (24/7)", Source.VENDOR),
    *_party("client", CLIENT, Source.CLIENT, {
        "name": "Acme Logistics SE",
        "address": "Am Sandtorkai 50, 20457 Hamburg, Germany",
        "registration_number": "Amtsgericht Hamburg HRB 178342",
        "contact_name": "Ada Admin",
        "contact_position": "Head of IT Procurement",
        "contact_email": "ada.admin@acme-logistics.example",
        "dpo": "Pia Privacy, Data Protection Officer, pia.privacy@acme-logistics.example",
    }),
    Field("agreement.reference", AGREEMENT, "The agreement's reference, quoted in notices.", "DPA-2026-0042",
          Source.PORTAL),
    Field("agreement.effective_date", AGREEMENT, "The date the agreement takes effect (YYYY-MM-DD).", "2026-02-01",
          Source.CLIENT),
    Field("agreement.version_id", AGREEMENT, "The template version the document was rendered from.",
          "Nordlicht AI default DPA, version 3", Source.PORTAL),
    Field("agreement.document_hash", AGREEMENT, "A document cannot contain its own hash: this names where the "
          "SHA-256 of the final file is recorded (the certificate of completion and the evidence record).",
          "recorded in the certificate of completion and the evidence record of this agreement", Source.PORTAL),
    Field("agreement.service_agreement", AGREEMENT, "The main agreement under which the services are provided.",
          "Nordlicht Platform Subscription Agreement of 16 June 2025", Source.CLIENT),
    Field("agreement.services", AGREEMENT, "The services in whose provision the vendor processes personal data.",
          "Nordlicht document analysis platform (web application and API)", Source.VENDOR),
    Field("portal_url", AGREEMENT, "The portal's address, where notices, objections and the sub-processor list are.",
          "https://trust.nordlicht-ai.example", Source.PORTAL),
    Field("processing.subject_matter", PROCESSING, "What the processing is about.",
          "Analysis of shipping documents and customer correspondence uploaded by the client's staff",
          Source.CLIENT),
    Field("processing.data_subjects", PROCESSING, "Categories of data subjects.",
          "The client's employees and contractors using the platform; the client's customers and their contact "
          "persons; consignees and drivers named in shipping documents", Source.CLIENT),
    Field("processing.personal_data", PROCESSING, "Categories of personal data.",
          "Names, business contact details, user account data, delivery addresses, contents of uploaded documents "
          "and messages, prompts and model outputs, usage logs", Source.CLIENT),
    Field("processing.sensitive_data", PROCESSING, "Special categories (Art. 9) or criminal-offence data (Art. 10) "
          "processed, or 'None'.", "None intended; uploaded documents may incidentally contain health data "
          "(e.g. sick notes of drivers)", Source.CLIENT),
    Field("processing.sensitive_safeguards", PROCESSING, "Restrictions and safeguards for sensitive data (required "
          "when there is any).", "Access limited to the client's own users; no human review by the vendor without "
          "the client's written request; such documents are excluded from any analytics", Source.CLIENT),
    Field("processing.nature", PROCESSING, "Nature of the processing (the operations performed).",
          "Storage, text extraction, classification, search indexing, language-model inference, transmission of "
          "notifications, deletion", Source.CLIENT),
    Field("processing.purposes", PROCESSING, "Purposes for which the data is processed on the client's behalf.",
          "Providing the platform to the client: extracting and summarising information from documents and "
          "answering the client's users' questions about them", Source.CLIENT),
    Field("processing.duration", PROCESSING, "Duration of the processing.",
          "For the term of the Service Agreement and until deletion or return under Clause 12", Source.CLIENT),
    Field("processing.frequency", PROCESSING, "Frequency of the processing or transfer (one-off or continuous).",
          "Continuous", Source.CLIENT),
    Field("processing.retention", PROCESSING, "Retention period, or the criteria that set it.",
          "As configured by the client in the platform (default 365 days after upload); backups are overwritten "
          "within 35 days", Source.CLIENT),
    Field("notice_days", TERMS, "Days of advance notice before a new or replacement sub-processor may process the "
          "client's data (a whole number).", 30, Source.NEGOTIATED),
    Field("breach_target_hours", TERMS, "Hours after becoming aware of a personal data breach within which the vendor "
          "aims to send its first notice (a whole number).", 24, Source.NEGOTIATED),
    Field("subprocessor_authorisation", TERMS, "Clause 7.7(a) option: 'general' (object within the notice period; "
          "silence counts as consent) or 'specific' (each new sub-processor needs explicit approval).", "general",
          Source.NEGOTIATED),
    Field("contacts.subprocessor_changes", CONTACTS, "The client's contacts for sub-processor change notices.",
          "Pia Privacy, Data Protection Officer, pia.privacy@acme-logistics.example", Source.CLIENT),
    Field("contacts.incidents", CONTACTS, "The client's contacts for security incidents and personal data "
          "breaches.", "Sven Security, CISO, sven.security@acme-logistics.example, +49 40 5558 0100",
          Source.CLIENT),
    Field("subprocessor_list.version", SUBPROCESSORS, "Number of the sub-processor list version in Annex IV; empty "
          "when none is published.", 7,
          Source.REGISTRY),
    Field("subprocessor_list.effective_date", SUBPROCESSORS, "The date that list version took effect.",
          "2026-01-12", Source.REGISTRY),
    Field("subprocessor_list.sha256", SUBPROCESSORS, "SHA-256 of that published list version.",
          "5e1f0c1b0c7a4f2b9d8e3a6c2f1d0b9a8c7e6d5f4a3b2c1d0e9f8a7b6c5d4e3f", Source.REGISTRY),
    Field("sp.name", SUBPROCESSORS, "Name the sub-processor is known by.", "Hetzner Online", Source.REGISTRY),
    Field("sp.legal_entity", SUBPROCESSORS, "Contracting legal entity.", "Hetzner Online GmbH", Source.REGISTRY),
    Field("sp.address", SUBPROCESSORS, "Registered address.", "Industriestr. 25, 91710 Gunzenhausen, Germany",
          Source.REGISTRY),
    Field("sp.contact", SUBPROCESSORS, "Contact person: name, position, email.",
          "Data Protection Officer, DPO, data-protection@hetzner.example", Source.REGISTRY),
    Field("sp.processing", SUBPROCESSORS, "Purpose and description of the processing, with what this sub-processor "
          "is and is not responsible for.", "Hosting of the production platform: runs the servers and storage in "
          "its German data centres; responsible for physical and network security, not for the application",
          Source.REGISTRY),
    Field("sp.locations", SUBPROCESSORS, "Countries where it processes the data.", "Germany (DE)", Source.REGISTRY),
    Field("sp.transfer_mechanism", SUBPROCESSORS, "Chapter V transfer tool, or why none is needed.",
          "Not needed: processing within the EEA", Source.REGISTRY),
    Field("sp.engaged_by", SUBPROCESSORS, "Who engages it: the vendor, or the sub-processor above it in the chain.",
          "Nordlicht AI GmbH", Source.REGISTRY),
    Field("ai_commitments.version", AI, "Version of the AI data-use commitments in Annex V; empty when none is "
          "published.", "4", Source.LEDGER),
    Field("ai_commitments.effective_date", AI, "The date that version took effect; empty when none is published.",
          "2026-01-05", Source.LEDGER),
    Field("ai_commitments.sha256", AI, "SHA-256 of that commitments version; empty when none is published.",
          "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", Source.LEDGER),
    Field("commitment.data_class", AI, "Customer data class (prompts, outputs, files, embeddings, fine-tuning data, "
          "feedback, telemetry).", "Prompts and inputs", Source.LEDGER),
    Field("commitment.training_use", AI, "Whether and for which models the class is used for training.",
          "None: not used to train or improve any model", Source.LEDGER),
    Field("commitment.vendor_retention", AI, "Retention at the vendor.", "Deleted with the conversation; at most "
          "30 days in operational logs", Source.LEDGER),
    Field("commitment.provider_retention", AI, "Retention at each model provider (zero data retention stated).",
          "Mistral AI: zero data retention", Source.LEDGER),
    Field("commitment.human_review", AI, "When people may look at the data.", "Only at the client's written request "
          "for support", Source.LEDGER),
    Field("commitment.locations", AI, "Where the class is processed.", "Germany (DE), France (FR)", Source.LEDGER),
    Field("signatures.client_name", SIGNATURES, "Full name typed by the client's signatory.", "Sigrid Signatory",
          Source.EXECUTION),
    Field("signatures.client_title", SIGNATURES, "Title typed by the client's signatory.", "Managing Director",
          Source.EXECUTION),
    Field("signatures.client_date", SIGNATURES, "Date (UTC) of the client's signature.", "2026-01-28",
          Source.EXECUTION),
    Field("signatures.vendor_name", SIGNATURES, "Full name of the vendor's signatory.", "Olivia Owner",
          Source.EXECUTION),
    Field("signatures.vendor_title", SIGNATURES, "Title of the vendor's signatory.", "Chief Executive Officer",
          Source.EXECUTION),
    Field("signatures.vendor_date", SIGNATURES, "Date (UTC) of the vendor's countersignature.", "2026-01-29",
          Source.EXECUTION),
    Field("governing_law.law", LAW, "The law governing the agreement.", "the laws of the Federal Republic of "
          "Germany", Source.VENDOR),
    Field("governing_law.courts", LAW, "The courts with jurisdiction.", "the courts of Berlin, Germany",
          Source.VENDOR),
)

LOOPS: tuple[Loop, ...] = (
    Loop("sp", "subprocessors", "One row per sub-processor in the list version, sub-processors of sub-processors "
         "included (``sp.engaged_by`` names who engages each)."),
    Loop("commitment", "ai_commitments.rows", "One row per customer data class in the AI commitments version; "
         "empty when none is published."),
)

_ROW_VARIABLES = {loop.variable for loop in LOOPS}


def allowed_names() -> frozenset[str]:
    """Every name a template may reference: each field, the objects holding them, the lists and their loop
    variables (a name outside this set makes an upload fail)."""
    names: set[str] = set()
    for field in FIELDS:
        parts = field.name.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    for loop in LOOPS:
        parts = loop.iterable.split(".")
        names.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        names.add(loop.variable)
    return frozenset(names)


def loop_bindings() -> dict[str, str]:
    """Loop variable -> the list it must iterate, e.g. ``{"sp": "subprocessors"}`` (the only loops allowed)."""
    return {loop.variable: loop.iterable for loop in LOOPS}


def fields_by_group() -> dict[str, list[Field]]:
    """The catalog in page order, grouped."""
    groups: dict[str, list[Field]] = {}
    for field in FIELDS:
        groups.setdefault(field.group, []).append(field)
    return groups


def _nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in pairs:
        *path, leaf = dotted.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


_DEMO_SUBPROCESSORS: tuple[dict[str, str], ...] = (
    {},  # the first row is the catalog's examples
    {"name": "Mistral AI", "legal_entity": "Mistral AI SAS", "address": "15 rue des Halles, 75001 Paris, France",
     "contact": "Privacy team, Legal, privacy@mistral.example",
     "processing": "Large language model inference: processes prompts and returns completions through its EU API "
                   "with zero data retention; does not train on the data",
     "locations": "France (FR)", "transfer_mechanism": "Not needed: processing within the EEA",
     "engaged_by": "Nordlicht AI GmbH"},
    {"name": "Relay Mail Services", "legal_entity": "Relay Mail Services GmbH",
     "address": "Am Hafen 4, 20457 Hamburg, Germany",
     "contact": "Jana Post, Privacy officer, privacy@relaymail.example",
     "processing": "Transactional email: sends notification emails on the vendor's behalf; keeps delivery logs "
                   "for 30 days", "locations": "Germany (DE)",
     "transfer_mechanism": "Not needed: processing within the EEA", "engaged_by": "Nordlicht AI GmbH"},
    {"name": "Postwerk Cloud", "legal_entity": "Postwerk Cloud Oy", "address": "Mannerheimintie 12, 00100 Helsinki, "
     "Finland", "contact": "Aino Virtanen, Security lead, security@postwerk.example",
     "processing": "Outbound mail relay infrastructure for Relay Mail Services; stores messages in transit for at "
                   "most 72 hours", "locations": "Finland (FI)",
     "transfer_mechanism": "Not needed: processing within the EEA", "engaged_by": "Relay Mail Services GmbH"},
    {"name": "Functional Software (Sentry)", "legal_entity": "Functional Software, Inc.",
     "address": "45 Fremont Street, San Francisco, CA 94105, USA", "contact": "Privacy team, Legal, "
     "privacy@sentry.example", "processing": "Error monitoring: receives error reports of the platform, scrubbed of "
     "request bodies; retained for 90 days", "locations": "United States (US)",
     "transfer_mechanism": "EU-US Data Privacy Framework (the recipient is certified)",
     "engaged_by": "Nordlicht AI GmbH"},
)

_DEMO_COMMITMENTS: tuple[dict[str, str], ...] = (
    {},  # the first row is the catalog's examples
    {"data_class": "Model outputs", "training_use": "None: not used to train or improve any model",
     "vendor_retention": "Kept with the conversation until the client deletes it or the retention period ends",
     "provider_retention": "Mistral AI: zero data retention", "human_review": "Only at the client's written "
     "request for support", "locations": "Germany (DE), France (FR)"},
    {"data_class": "Uploaded files", "training_use": "None: not used to train or improve any model",
     "vendor_retention": "As configured by the client (default 365 days)", "provider_retention": "Not sent to model "
     "providers; only extracted passages are part of prompts", "human_review": "Only at the client's written "
     "request for support", "locations": "Germany (DE)"},
)


def demo_context() -> dict[str, Any]:
    """A complete, realistic context (a fresh copy each call) for previews: every catalog name has a value."""
    scalars = [(f.name, f.example) for f in FIELDS if f.name.split(".")[0] not in _ROW_VARIABLES]
    context = _nest(scalars)
    first_sp = {f.name.removeprefix("sp."): f.example for f in FIELDS if f.name.startswith("sp.")}
    first_commitment = {f.name.removeprefix("commitment."): f.example for f in FIELDS
                        if f.name.startswith("commitment.")}
    context["subprocessors"] = [dict(row or first_sp) for row in _DEMO_SUBPROCESSORS]
    context["ai_commitments"]["rows"] = [dict(row or first_commitment) for row in _DEMO_COMMITMENTS]
    return context
