"""Versions of the AI data-use commitments, and what each client recorded about them.

Invariants: a draft becomes a numbered version when published, with its effective date, a reason, its differences
from the previous version, whether it widens what that version allowed, and a SHA-256 that chains to the previous
version's (``ledger.chain_hash``); from then on the ORM refuses to change or delete it (legal requirement 53).
A client's training instructions, acceptances and declines are records the ORM refuses to change or delete too.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, event, inspect
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, StrEnumColumn, created_at, optional_timestamp, timestamp, uuid_pk
from portal.tenancy import TenantScoped


class VersionStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class CommitmentVersion(Base):
    __tablename__ = "ai_commitment_versions"

    id: Mapped[uuid_pk]
    number: Mapped[int | None] = mapped_column(Integer(), unique=True, nullable=True)
    status: Mapped[VersionStatus] = mapped_column(StrEnumColumn(VersionStatus, 10), default=VersionStatus.DRAFT)
    document: Mapped[dict[str, Any]]
    effective_date: Mapped[dt.date | None] = mapped_column(Date(), nullable=True)
    reason: Mapped[str] = mapped_column(Text(), default="")
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)  # path -> {"before", "after"} against the previous
    expanding: Mapped[bool] = mapped_column(Boolean(), default=False)
    expanding_reasons: Mapped[list[str]] = mapped_column(default=list)
    previous_sha256: Mapped[str] = mapped_column(String(64), default="")
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[created_at]
    published_by: Mapped[str] = mapped_column(String(400), default="")
    published_at: Mapped[optional_timestamp]


class TrainingInstruction(TenantScoped, Base):
    """A client admin's documented instruction: training on one data class of the client's data on or off."""

    __tablename__ = "ai_training_instructions"
    __table_args__ = (UniqueConstraint("org_id", "seq"),)

    id: Mapped[uuid_pk]
    seq: Mapped[int] = mapped_column(Integer())
    data_class: Mapped[str] = mapped_column(String(40))
    enabled: Mapped[bool] = mapped_column(Boolean())
    note: Mapped[str] = mapped_column(Text())
    given_by: Mapped[str] = mapped_column(String(400))
    given_at: Mapped[timestamp]
    commitments_version: Mapped[int | None] = mapped_column(Integer(), nullable=True)  # in force when given


class Acceptance(TenantScoped, Base):
    """A client admin's recorded acceptance of a version that widens the commitments applying to the client: only
    then does that version apply to the client (legal requirement 57)."""

    __tablename__ = "ai_commitment_acceptances"
    __table_args__ = (UniqueConstraint("org_id", "version_id"),)

    id: Mapped[uuid_pk]
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_commitment_versions.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer())
    sha256: Mapped[str] = mapped_column(String(64))  # of the version accepted, as the client saw it
    widening: Mapped[list[str]] = mapped_column(default=list)  # what it widened for the client, as shown
    statement: Mapped[str] = mapped_column(Text())  # the confirmation the admin gave, verbatim
    accepted_by: Mapped[str] = mapped_column(String(400))
    accepted_at: Mapped[timestamp]


class Decline(TenantScoped, Base):
    """A client admin's recorded refusal of a version that widens what applies to the client, with the reason: the
    version does not apply (as without an answer), and the vendor sees why. The client may still accept later."""

    __tablename__ = "ai_commitment_declines"
    __table_args__ = (UniqueConstraint("org_id", "version_id"),)

    id: Mapped[uuid_pk]
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_commitment_versions.id", ondelete="RESTRICT"))
    number: Mapped[int] = mapped_column(Integer())
    reason: Mapped[str] = mapped_column(Text())
    declined_by: Mapped[str] = mapped_column(String(400))
    declined_at: Mapped[timestamp]


class ImmutableVersion(RuntimeError):
    pass


@event.listens_for(TrainingInstruction, "before_update")
@event.listens_for(TrainingInstruction, "before_delete")
@event.listens_for(Acceptance, "before_update")
@event.listens_for(Acceptance, "before_delete")
@event.listens_for(Decline, "before_update")
@event.listens_for(Decline, "before_delete")
def _client_records_stay(_mapper: object, _connection: object,
                         target: TrainingInstruction | Acceptance | Decline) -> None:
    raise ImmutableVersion(f"{type(target).__name__.lower()} {target.id} is a record and cannot change")


@event.listens_for(CommitmentVersion, "before_update")
def _published_versions_do_not_change(_mapper: object, _connection: object, target: CommitmentVersion) -> None:
    history = inspect(target).attrs.status.history
    was = history.deleted[0] if history.deleted else target.status
    if was is VersionStatus.PUBLISHED:
        raise ImmutableVersion(f"AI commitments version {target.number} is published and cannot change")


@event.listens_for(CommitmentVersion, "before_delete")
def _published_versions_stay(_mapper: object, _connection: object, target: CommitmentVersion) -> None:
    if target.status is VersionStatus.PUBLISHED:
        raise ImmutableVersion(f"AI commitments version {target.number} is published and cannot be deleted")
