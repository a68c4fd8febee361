"""The certificate of completion: the sealed evidence record as a document people read.

Invariants:
- everything in it comes from the sealed record (and the SHA-256 of its bytes), nothing from the database, so it
  can never say more or other than evidence.json; it is a summary, not itself sealed, and says so;
- every signature, and every event in the record's order, is listed; consent and authority texts verbatim;
- a simple electronic signature is called exactly that, never qualified or advanced;
- the same sealed record gives the same bytes (core properties and zip entry times are the execution time).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import docx

from portal import docx_records
from portal.signing.bundle import (
    CERTIFICATE_OF_COMPLETION_NAME,
    EVIDENCE_NAME,
    README_NAME,
    SealedEvidence,
    executed_at,
    utc_text,
)

TITLE = "Certificate of completion"
LEVELS = {"SES": "Simple electronic signature (SES)"}
TERMS = {
    "notice_days": "Notice of sub-processor changes (days)",
    "breach_target_hours": "Breach notification target (hours)",
    "subprocessor_authorisation": "Sub-processor authorisation",
}
EVENT_COLUMNS = ("Seq", "Time", "Type", "Actor", "IP address", "User agent", "Authentication")


def certificate_of_completion(sealed: SealedEvidence) -> bytes:
    """The DOCX certificate of completion for ``sealed``, deterministic for the same record."""
    record = sealed.record
    agreement = record["agreement"]
    document = docx.Document()
    document.add_heading(TITLE, level=0)
    document.add_paragraph(
        f"This certificate summarises the evidence record sealed by {_say(agreement['vendor'].get('name'))} when "
        f"the data processing agreement {_say(agreement.get('reference'))} was executed. The sealed record, "
        f"{EVIDENCE_NAME} in the evidence bundle, is authoritative; this certificate is not itself sealed.")

    document.add_heading("Agreement", level=1)
    docx_records.facts(document, [
        ("Reference", agreement.get("reference")),
        ("Agreement ID", agreement.get("id")),
        ("Client", agreement["client"].get("name")),
        ("Vendor", agreement["vendor"].get("name")),
        ("Executed (UTC)", utc_text(agreement.get("executed_at"))),
        ("Template", _version(record.get("template"))),
        ("Sub-processor list", _version(record.get("subprocessor_list"), "none")),
        ("AI commitments", _version(record.get("ai_commitments"), "none published")),
    ])

    document.add_heading("Terms", level=1)
    terms = record.get("terms") or {}
    docx_records.facts(document, [(TERMS.get(name, name.replace("_", " ").capitalize()), value)
                      for name, value in terms.items()] or [("Terms", "none recorded")])

    document.add_heading("Documents", level=1)
    docx_records.table(document, ("Role", "Name", "Description", "Bytes", "SHA-256"),
           [(d.get("role"), d.get("name"), d.get("description"), d.get("bytes"), d.get("sha256"))
            for d in record["documents"]])

    document.add_heading("Signatures", level=1)
    for signature in record.get("signatures") or []:
        document.add_heading(f"{_say(signature.get('party')).capitalize()}: {_say(signature.get('name'))}", level=2)
        level = signature.get("level")
        docx_records.facts(document, [
            ("Party", signature.get("party")),
            ("Name", signature.get("name")),
            ("Title", signature.get("title")),
            ("Organisation", signature.get("organisation")),
            ("Email", signature.get("email")),
            ("Authentication method", signature.get("auth_method")),
            ("Signature level", LEVELS.get(level, level) if isinstance(level, str) else level),
            ("Signed at (UTC)", utc_text(signature.get("signed_at"))),
            ("Document signed (SHA-256)", signature.get("document_sha256")),
            ("IP address", signature.get("ip")),
            ("User agent", signature.get("user_agent")),
            ("Consent text", signature.get("consent_text")),
            ("Authority statement", signature.get("authority_statement")),
            ("Button pressed", signature.get("button_label")),
        ])

    document.add_heading("Events", level=1)
    document.add_paragraph(f"Every event of the agreement's history, in order; {EVIDENCE_NAME} holds each one's "
                           "details.")
    docx_records.table(document, EVENT_COLUMNS,
           [(e.get("seq"), utc_text(e.get("at")), e.get("type"), e.get("actor"), e.get("ip"), e.get("user_agent"),
             e.get("auth_method")) for e in record.get("events") or []])

    document.add_heading("Seal", level=1)
    seal = record.get("seal") or {}
    docx_records.facts(document, [
        (f"SHA-256 of {EVIDENCE_NAME}", hashlib.sha256(sealed.data).hexdigest()),
        ("Seal algorithm", seal.get("algorithm")),
        ("Seal certificate SHA-256", seal.get("certificate_sha256")),
    ])
    document.add_paragraph(
        f"To verify, follow {README_NAME} in the evidence bundle, which needs only sha256sum and openssl, or run "
        "`portal verify` on the bundle. Compare the seal certificate's fingerprint with the one the vendor "
        f"publishes on its portal's /verify page. This file is {CERTIFICATE_OF_COMPLETION_NAME} in the bundle.")

    return docx_records.finished(document, title=f"{TITLE}: {_say(agreement.get('reference'))}",
                                 author=_say(agreement["vendor"].get("name")), subject="",
                                 moment=executed_at(record))


def _say(value: object) -> str:
    return "" if value is None else str(value)


def _version(item: object, absent: str = "none") -> str:
    if not isinstance(item, Mapping):
        return absent
    effective = f", effective {item['effective_date']}" if item.get("effective_date") else ""
    return f"version {_say(item.get('version'))}{effective}, SHA-256 {_say(item.get('sha256'))}"
