"""Executing an agreement once both parties have signed: the executed copy, its sealed PDF, the evidence record, the
certificate of completion and the evidence bundle, all stored with their hashes in the same transaction.

Invariants:
- the executed DOCX is rendered from exactly the values the signed document was rendered with, only Annex I's
  signature lines filled in; both hashes are in the evidence;
- the evidence record lists every event of the agreement in order with time, IP, user agent and how the person
  had logged in, both signatures with the texts they agreed to, the template, sub-processor list and AI
  commitments versions with their hashes, and every document's hash; it is sealed with the vendor's key;
- the PDF copy carries the vendor's PAdES signature when LibreOffice is installed; without it the portal still
  executes the agreement and the evidence says that no PDF was made;
- nothing here is written unless all of it is: a failure rolls back the countersignature with the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.actors import Actor
from portal.agreements.document import render_executed
from portal.agreements.events import Origin, append, events_of
from portal.agreements.models import (
    Agreement,
    AgreementDocument,
    DocumentKind,
    EventType,
    Party,
    Signature,
)
from portal.dpa.models import TemplateVersion
from portal.notifications import catalog
from portal.notifications.service import notify
from portal.settings import Settings
from portal.signing.bundle import build_bundle, seal_evidence
from portal.signing.completion import certificate_of_completion
from portal.signing.pdf import docx_to_pdf, pdf_available, sign_pdf_async
from portal.signing.seal import seal_key
from portal.tenancy import scoped

FORMAT = "dpa-portal-evidence/1"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MEDIA_TYPES = {
    DocumentKind.SIGNED_DOCX: DOCX_TYPE, DocumentKind.EXECUTED_DOCX: DOCX_TYPE,
    DocumentKind.EXECUTED_PDF: "application/pdf", DocumentKind.CERTIFICATE: DOCX_TYPE,
    DocumentKind.EVIDENCE: "application/json", DocumentKind.BUNDLE: "application/zip",
}
DESCRIPTIONS = {
    DocumentKind.SIGNED_DOCX: "The document as reviewed and signed by both parties (Annex I signature lines pending)",
    DocumentKind.EXECUTED_DOCX: "The signed document with both signatures in Annex I",
    DocumentKind.EXECUTED_PDF: "PDF copy of the executed document, sealed with the vendor's PAdES signature",
}


def filename_of(agreement: Agreement, kind: DocumentKind) -> str:
    stem = agreement.reference
    return {
        DocumentKind.SIGNED_DOCX: f"{stem}-signed.docx", DocumentKind.EXECUTED_DOCX: f"{stem}.docx",
        DocumentKind.EXECUTED_PDF: f"{stem}.pdf", DocumentKind.CERTIFICATE: f"{stem}-certificate-of-completion.docx",
        DocumentKind.EVIDENCE: f"{stem}-evidence.json", DocumentKind.BUNDLE: f"{stem}-evidence-bundle.zip",
    }[kind]


async def signatures_of(session: AsyncSession, org: Organisation, agreement: Agreement) -> dict[Party, Signature]:
    rows = (await session.execute(scoped(
        select(Signature).where(Signature.agreement_id == agreement.id), Signature, org))).scalars()
    return {row.party: row for row in rows}


def _time(value: dt.datetime | None) -> str:
    return value.isoformat() if value is not None else ""


def _signature_json(signature: Signature) -> dict[str, Any]:
    return {"party": signature.party.value, "name": signature.name, "title": signature.title,
            "organisation": signature.organisation, "email": signature.email, "auth_method": signature.auth_method,
            "level": signature.level.value, "signed_at": _time(signature.signed_at),
            "document_sha256": signature.document_sha256, "ip": signature.ip, "user_agent": signature.user_agent,
            "consent_text": signature.consent_text, "authority_statement": signature.authority_statement,
            "button_label": signature.button_label}


def _document_json(agreement: Agreement, kind: DocumentKind, data: bytes) -> dict[str, Any]:
    return {"role": {DocumentKind.SIGNED_DOCX: "signed", DocumentKind.EXECUTED_DOCX: "executed",
                     DocumentKind.EXECUTED_PDF: "executed_pdf"}[kind],
            "name": filename_of(agreement, kind), "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "media_type": MEDIA_TYPES[kind], "description": DESCRIPTIONS[kind]}


async def evidence_record(session: AsyncSession, *, agreement: Agreement, org: Organisation, vendor_name: str,
                          documents: dict[DocumentKind, bytes], signatures: dict[Party, Signature],
                          pdf_note: str) -> dict[str, Any]:
    """The record the seal covers (the bundle README and ``portal verify`` explain how to check it)."""
    events = await events_of(session, org, agreement)
    bound = agreement.bound_to
    return {
        "format": FORMAT,
        "agreement": {"id": str(agreement.id), "reference": agreement.reference,
                      "client": {"id": str(org.id), "name": org.name}, "vendor": {"name": vendor_name},
                      "executed_at": _time(agreement.executed_at), "pdf": pdf_note},
        "template": bound.get("template"),
        "subprocessor_list": bound.get("subprocessor_list"),
        "ai_commitments": bound.get("ai_commitments"),
        "terms": {"notice_days": agreement.notice_days, "breach_target_hours": agreement.breach_target_hours,
                  "subprocessor_authorisation": agreement.subprocessor_authorisation.value},
        "documents": [_document_json(agreement, kind, data) for kind, data in documents.items()],
        "signatures": [_signature_json(signatures[party]) for party in (Party.CLIENT, Party.VENDOR)],
        "events": [{"seq": e.seq, "type": e.type.value, "at": _time(e.at), "actor": e.actor, "ip": e.ip,
                    "user_agent": e.user_agent, "auth_method": e.auth_method, "data": e.data} for e in events],
    }


async def execute(session: AsyncSession, *, agreement: Agreement, org: Organisation, template: TemplateVersion,
                  actor: Actor, origin: Origin, settings: Settings, vendor_name: str) -> None:
    """Make and store the executed copy, its PDF, the sealed evidence, the certificate and the bundle."""
    signatures = await signatures_of(session, org, agreement)
    assert agreement.document_docx is not None
    assert set(signatures) == {Party.CLIENT, Party.VENDOR}
    key = seal_key(settings)
    executed = await render_executed(template, agreement.document_context, signatures[Party.CLIENT],
                                     signatures[Party.VENDOR])
    documents = {DocumentKind.SIGNED_DOCX: agreement.document_docx, DocumentKind.EXECUTED_DOCX: executed}
    pdf_note = "LibreOffice is not installed on the portal's server: no PDF copy was made"
    if pdf_available():
        pdf = await docx_to_pdf(executed)
        documents[DocumentKind.EXECUTED_PDF] = await sign_pdf_async(
            pdf, key, reason=f"Data processing agreement {agreement.reference} executed between {org.name} and "
                             f"{vendor_name}", location=settings.base_url)
        pdf_note = "PDF copy converted by LibreOffice and sealed with the vendor's PAdES signature"
    await append(session, org, agreement, type=EventType.EXECUTED, actor=actor, origin=origin,
                 data={"document_sha256": agreement.document_sha256,
                       "executed_sha256": hashlib.sha256(executed).hexdigest()})
    record = await evidence_record(session, agreement=agreement, org=org, vendor_name=vendor_name,
                                   documents=documents, signatures=signatures, pdf_note=pdf_note)
    sealed = seal_evidence(record, key)
    certificate = certificate_of_completion(sealed)
    bundle = build_bundle(sealed, key, {filename_of(agreement, kind): data for kind, data in documents.items()},
                          certificate_of_completion=certificate)
    stored = {**documents, DocumentKind.CERTIFICATE: certificate, DocumentKind.EVIDENCE: sealed.data,
              DocumentKind.BUNDLE: bundle}
    for kind, data in stored.items():
        session.add(AgreementDocument(id=uuid.uuid4(), org_id=org.id, agreement_id=agreement.id, kind=kind,
                                      filename=filename_of(agreement, kind), media_type=MEDIA_TYPES[kind], data=data,
                                      sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    await session.flush()
    hashes = {kind.value: hashlib.sha256(data).hexdigest() for kind, data in stored.items()}
    await audit.record(session, actor=actor, tag="agreement:executed", subject=agreement, org_id=org.id,
                       data={"reference": agreement.reference, "documents": hashes,
                             "evidence_signature": sealed.signature})
    assert agreement.executed_at is not None
    await notify(session, actor=actor, orgs=[org], subject=agreement, content=catalog.agreement_executed(
        version=str(template.number), document_sha256=agreement.document_sha256, executed_at=agreement.executed_at,
        link=f"{settings.base_url}/orgs/{org.id}/agreements/{agreement.id}", reference=agreement.reference))
