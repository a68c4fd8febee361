"""A client's data processing agreement: its terms, the details the client filled in, the signing ceremony's
state, and the evidence it leaves (events, signatures, documents).

Invariants:
- a client organisation has at most one ``executed`` agreement (the one in force) and at most one open one (draft,
  awaiting signature or awaiting countersignature): two partial unique indexes; executing a new agreement
  supersedes the previous one, which stays as history;
- ``notice_days`` is the period the agreement sets for sub-processor changes (null: the portal's default,
  ``PORTAL_SUBPROCESSOR_NOTICE_DAYS``); ``subprocessor_authorisation`` is Clause 7.7(a) of Decision 2021/915:
  under ``general`` authorisation silence by the deadline is consent, under ``specific`` it is not;
- once an agreement is sent for signature its document (``document_docx``, hashed in ``document_sha256``) is the
  exact text every signature binds to; it never changes afterwards;
- events, signatures and documents are evidence: the ORM refuses to change or delete them, a party signs at most
  once (a unique constraint), and each document is stored with the SHA-256 of exactly its bytes;
- agreements signed outside the portal are recorded by vendor staff (``source = recorded``) straight as executed.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation
from portal.db import Base, StrEnumColumn, created_at, optional_timestamp, short_text, timestamp, uuid_pk
from portal.tenancy import TenantScoped


class Authorisation(enum.StrEnum):
    GENERAL = "general"  # Option 2: an agreed list, changes notified in advance, the client may object
    SPECIFIC = "specific"  # Option 1: each new sub-processor needs the client's explicit approval

    @property
    def label(self) -> str:
        return {"general": "General written authorisation (object within the notice period)",
                "specific": "Prior specific authorisation (explicit approval needed)"}[self.value]


class AgreementStatus(enum.StrEnum):
    DRAFT = "draft"  # the client's admin fills in the details
    AWAITING_SIGNATURE = "awaiting_signature"  # the document is fixed; the chosen signatory reviews and signs
    AWAITING_COUNTERSIGNATURE = "awaiting_countersignature"  # the client signed; the vendor countersigns
    EXECUTED = "executed"  # both parties signed: the agreement in force, sealed
    DECLINED = "declined"  # the client's signatory declined, with a reason
    SUPERSEDED = "superseded"  # replaced by a newer agreement or template version before or after execution
    TERMINATED = "terminated"  # ended by vendor staff or by an objection's resolution

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


STATUS_LABELS = {
    AgreementStatus.DRAFT: "Draft",
    AgreementStatus.AWAITING_SIGNATURE: "Awaiting the client's signature",
    AgreementStatus.AWAITING_COUNTERSIGNATURE: "Awaiting the vendor's countersignature",
    AgreementStatus.EXECUTED: "Executed",
    AgreementStatus.DECLINED: "Declined",
    AgreementStatus.SUPERSEDED: "Superseded",
    AgreementStatus.TERMINATED: "Terminated",
}
OPEN_STATUSES = frozenset({AgreementStatus.DRAFT, AgreementStatus.AWAITING_SIGNATURE,
                           AgreementStatus.AWAITING_COUNTERSIGNATURE})
_OPEN_SQL = "status IN ('draft', 'awaiting_signature', 'awaiting_countersignature')"


class AgreementSource(enum.StrEnum):
    RECORDED = "recorded"  # signed outside the portal and recorded by vendor staff
    SIGNED = "signed"  # signed in the portal by both parties


class Agreement(TenantScoped, Base):
    __tablename__ = "agreements"
    __table_args__ = (
        Index("uq_agreements_one_executed", "org_id", unique=True,
              postgresql_where=text("status = 'executed'"), sqlite_where=text("status = 'executed'")),
        Index("uq_agreements_one_open", "org_id", unique=True,
              postgresql_where=text(_OPEN_SQL), sqlite_where=text(_OPEN_SQL)),
    )

    id: Mapped[uuid_pk]
    reference: Mapped[short_text]
    signed_on: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)  # the day it was executed
    source: Mapped[AgreementSource] = mapped_column(StrEnumColumn(AgreementSource, 20))
    subprocessor_authorisation: Mapped[Authorisation] = mapped_column(StrEnumColumn(Authorisation, 20))
    notice_days: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    breach_target_hours: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    status: Mapped[AgreementStatus] = mapped_column(StrEnumColumn(AgreementStatus, 30),
                                                    default=AgreementStatus.EXECUTED)
    recorded_by: Mapped[str] = mapped_column(String(400))  # who recorded it, or who started it in the portal
    created_at: Mapped[created_at]
    ended_at: Mapped[optional_timestamp]
    end_reason: Mapped[str] = mapped_column(String(500), default="")
    # The ceremony (agreements signed in the portal)
    template_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("dpa_template_versions.id", ondelete="RESTRICT"), nullable=True, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # catalog name -> value typed by the client
    signatory_user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                                nullable=True)
    document_docx: Mapped[bytes | None] = mapped_column(LargeBinary(), nullable=True, deferred=True)
    document_sha256: Mapped[str] = mapped_column(String(64), default="")
    bound_to: Mapped[dict[str, Any]] = mapped_column(default=dict)  # template, list and commitments versions
    # The values the document was rendered with: the executed copy is rendered again from them with the signatures.
    document_context: Mapped[dict[str, Any]] = mapped_column(default=dict, deferred=True)
    sent_at: Mapped[optional_timestamp]
    executed_at: Mapped[optional_timestamp]
    decline_reason: Mapped[str] = mapped_column(Text(), default="")

    org: Mapped[Organisation] = relationship(lazy="raise")

    def notice_days_or(self, default: int) -> int:
        return self.notice_days if self.notice_days is not None else default

    def breach_target_hours_or(self, default: int) -> int:
        return self.breach_target_hours if self.breach_target_hours is not None else default

    @property
    def in_portal(self) -> bool:
        return self.template_version_id is not None


class EventType(enum.StrEnum):
    CREATED = "created"
    DETAILS_SAVED = "details_saved"
    SENT_FOR_SIGNATURE = "sent_for_signature"
    REMINDED = "reminded"
    VIEWED = "viewed"
    CONSENTED = "consented"  # agreement to conclude the agreement and receive notices electronically
    SIGNED = "signed"
    DECLINED = "declined"
    COUNTERSIGNED = "countersigned"
    EXECUTED = "executed"
    SUPERSEDED = "superseded"
    TERMINATED = "terminated"


class AgreementEvent(TenantScoped, Base):
    """One step of an agreement's life, with who, when, from where and how they had logged in."""

    __tablename__ = "agreement_events"
    __table_args__ = (UniqueConstraint("agreement_id", "seq"),)

    id: Mapped[uuid_pk]
    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer())
    type: Mapped[EventType] = mapped_column(StrEnumColumn(EventType, 30))
    at: Mapped[timestamp]
    actor: Mapped[str] = mapped_column(String(400))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    auth_method: Mapped[str] = mapped_column(String(30), default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Party(enum.StrEnum):
    CLIENT = "client"
    VENDOR = "vendor"


class SignatureLevel(enum.StrEnum):
    """eIDAS levels; a click in the portal is a simple electronic signature and is never labelled otherwise."""

    SES = "SES"
    AES = "AES"
    QES = "QES"


class Signature(TenantScoped, Base):
    __tablename__ = "agreement_signatures"
    __table_args__ = (UniqueConstraint("agreement_id", "party"),)

    id: Mapped[uuid_pk]
    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), index=True)
    party: Mapped[Party] = mapped_column(StrEnumColumn(Party, 10))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    name: Mapped[short_text]
    title: Mapped[short_text]
    organisation: Mapped[short_text]
    email: Mapped[str] = mapped_column(String(320), default="")
    auth_method: Mapped[str] = mapped_column(String(30))
    level: Mapped[SignatureLevel] = mapped_column(StrEnumColumn(SignatureLevel, 3), default=SignatureLevel.SES)
    signed_at: Mapped[timestamp]
    document_sha256: Mapped[str] = mapped_column(String(64))
    consent_text: Mapped[str] = mapped_column(Text())
    authority_statement: Mapped[str] = mapped_column(Text())
    button_label: Mapped[str] = mapped_column(String(300))
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class DocumentKind(enum.StrEnum):
    SIGNED_DOCX = "signed_docx"  # the document as reviewed and signed
    EXECUTED_DOCX = "executed_docx"  # the same with both signatures in Annex I
    EXECUTED_PDF = "executed_pdf"  # its PDF copy, with the vendor's PAdES signature
    CERTIFICATE = "certificate"  # the certificate of completion
    EVIDENCE = "evidence"  # evidence.json, sealed
    BUNDLE = "bundle"  # everything above in one zip that verifies offline

    @property
    def label(self) -> str:
        return DOCUMENT_LABELS[self]


DOCUMENT_LABELS = {
    DocumentKind.SIGNED_DOCX: "Signed document (DOCX, as reviewed)",
    DocumentKind.EXECUTED_DOCX: "Executed agreement (DOCX)",
    DocumentKind.EXECUTED_PDF: "Executed agreement (PDF with the vendor's seal)",
    DocumentKind.CERTIFICATE: "Certificate of completion (DOCX)",
    DocumentKind.EVIDENCE: "Evidence record (JSON)",
    DocumentKind.BUNDLE: "Evidence bundle (ZIP, verifies offline)",
}


class AgreementDocument(TenantScoped, Base):
    __tablename__ = "agreement_documents"
    __table_args__ = (UniqueConstraint("agreement_id", "kind"),)

    id: Mapped[uuid_pk]
    agreement_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agreements.id", ondelete="CASCADE"), index=True)
    kind: Mapped[DocumentKind] = mapped_column(StrEnumColumn(DocumentKind, 20))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary(), deferred=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer())
    created_at: Mapped[created_at]


class ImmutableEvidence(RuntimeError):
    pass


def _refuse(kind: str) -> Any:
    def listener(_mapper: object, _connection: object, target: object) -> None:
        raise ImmutableEvidence(f"{kind} {getattr(target, 'id', '')} is evidence and cannot change")
    return listener


for _model, _kind in ((AgreementEvent, "agreement event"), (Signature, "signature"),
                      (AgreementDocument, "agreement document")):
    event.listen(_model, "before_update", _refuse(_kind))
    event.listen(_model, "before_delete", _refuse(_kind))
