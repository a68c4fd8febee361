"""The sub-processor registry: drafted changes, published list versions, and each client's authorisation of each
change with its objections.

Invariants:
- the registry in force is a sequence of ``ListVersion`` rows; each holds the complete list after its changes
  (``document``, canonical JSON) and ``sha256`` over exactly those bytes; a version is never updated or deleted
  once written, so what the list said on any day can be shown and proven;
- versions take effect in number order: a version's ``effective_date`` is never earlier than its predecessor's;
- between publications the vendor edits ``DraftChange`` rows (one per entry), which publishing turns into the
  next version and deletes;
- a ``ChangeAuthorisation`` is one client's position on one entry's addition, replacement or change in one
  version: ``pending`` until its deadline, ``objected`` while (and after) it objects, ``authorised`` when the
  client approves or withdraws its objection, ``deemed_authorised`` when a general authorisation's deadline
  passes in silence, ``not_authorised`` when a specific authorisation's deadline passes in silence;
- a change is in force for a client only from the effective date and only when authorised or deemed authorised.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer, String, Text, UniqueConstraint, event
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation
from portal.agreements.models import Authorisation
from portal.db import Base, JSONDocument, StrEnumColumn, created_at, optional_timestamp, timestamp, utcnow, uuid_pk
from portal.tenancy import TenantScoped


class DraftKind(enum.StrEnum):
    ADD = "add"
    MODIFY = "modify"
    REPLACE = "replace"  # a new entry takes the place of an existing one
    REMOVE = "remove"


class ChangeKind(enum.StrEnum):
    """How an entry differs between two versions (the words notices and feeds use)."""

    ADDED = "added"
    REPLACED = "replaced"
    CHANGED = "changed"
    REMOVED = "removed"

    @property
    def label(self) -> str:
        return {"added": "New sub-processor", "replaced": "Replacement", "changed": "Change",
                "removed": "Removal"}[self.value]

    @property
    def needs_notice(self) -> bool:
        """Additions and replacements (GDPR Art. 28(2)) and changes to an entry (a new location, purpose or
        transfer tool changes what the client authorised) need advance notice; removals are informational."""
        return self is not ChangeKind.REMOVED


# By value, for templates and feeds that hold a change's kind as a string.
KIND_LABELS: dict[str, str] = {kind.value: kind.label for kind in ChangeKind}


class AuthorisationState(enum.StrEnum):
    PENDING = "pending"
    OBJECTED = "objected"
    AUTHORISED = "authorised"
    DEEMED_AUTHORISED = "deemed_authorised"
    NOT_AUTHORISED = "not_authorised"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def in_force(self) -> bool:
        return self in (AuthorisationState.AUTHORISED, AuthorisationState.DEEMED_AUTHORISED)


class Resolution(enum.StrEnum):
    ACCOMMODATED = "accommodated"  # the client's data is kept away from the sub-processor
    WITHDRAWN = "withdrawn"  # the client withdrew its objection: the change is authorised for it
    ABANDONED = "abandoned"  # the vendor drops the change for this client
    TERMINATED = "terminated"  # the agreement ends

    @property
    def label(self) -> str:
        return {"accommodated": "Accommodated", "withdrawn": "Withdrawn by the client",
                "abandoned": "Change abandoned", "terminated": "Agreement terminated"}[self.value]


class DraftChange(Base):
    """One entry's drafted addition, change, replacement or removal (vendor-wide: the registry has no tenant)."""

    __tablename__ = "subprocessor_drafts"
    __table_args__ = (UniqueConstraint("entry_id"),)

    id: Mapped[uuid_pk]
    kind: Mapped[DraftKind] = mapped_column(StrEnumColumn(DraftKind, 20))
    entry_id: Mapped[uuid.UUID]
    replaces_entry_id: Mapped[uuid.UUID | None]
    data: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[created_at]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ListVersion(Base):
    __tablename__ = "subprocessor_versions"

    id: Mapped[uuid_pk]
    number: Mapped[int] = mapped_column(Integer(), unique=True)
    announced_at: Mapped[timestamp]
    effective_date: Mapped[dt.date] = mapped_column(Date(), index=True)
    notice_days: Mapped[int] = mapped_column(Integer())  # the longest period applied (0: removals only)
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[dict[str, Any]]  # {"version", "effective_date", "entries": [...]}, canonical
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument())
    summary: Mapped[str] = mapped_column(Text(), default="")
    published_by: Mapped[str] = mapped_column(String(400))

    @property
    def needs_notice(self) -> bool:
        return any(ChangeKind(c["kind"]).needs_notice for c in self.changes)


class ChangeAuthorisation(TenantScoped, Base):
    __tablename__ = "subprocessor_authorisations"
    __table_args__ = (UniqueConstraint("org_id", "version_id", "entry_id"),)

    id: Mapped[uuid_pk]
    version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("subprocessor_versions.id", ondelete="RESTRICT"),
                                                  index=True)
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agreements.id", ondelete="SET NULL"))
    entry_id: Mapped[uuid.UUID]
    entry_name: Mapped[str] = mapped_column(String(200))
    change_kind: Mapped[ChangeKind] = mapped_column(StrEnumColumn(ChangeKind, 20))
    authorisation: Mapped[Authorisation] = mapped_column(StrEnumColumn(Authorisation, 20))
    notice_days: Mapped[int] = mapped_column(Integer())
    notified_at: Mapped[timestamp]
    deadline: Mapped[timestamp] = mapped_column(index=True)
    state: Mapped[AuthorisationState] = mapped_column(StrEnumColumn(AuthorisationState, 30), index=True,
                                                      default=AuthorisationState.PENDING)
    decided_at: Mapped[optional_timestamp]
    decided_by: Mapped[str] = mapped_column(String(400), default="")

    org: Mapped[Organisation] = relationship(lazy="raise")
    version: Mapped[ListVersion] = relationship(lazy="raise")
    objections: Mapped[list[Objection]] = relationship(back_populates="authorisation", lazy="raise",
                                                       order_by="Objection.lodged_at")


class Objection(TenantScoped, Base):
    __tablename__ = "subprocessor_objections"

    id: Mapped[uuid_pk]
    authorisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("subprocessor_authorisations.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(Text())
    lodged_by: Mapped[str] = mapped_column(String(400))
    lodged_by_email: Mapped[str] = mapped_column(String(320), default="")
    lodged_at: Mapped[created_at]
    resolution: Mapped[Resolution | None] = mapped_column(StrEnumColumn(Resolution, 20), nullable=True)
    resolution_note: Mapped[str] = mapped_column(Text(), default="")
    resolved_by: Mapped[str] = mapped_column(String(400), default="")
    resolved_at: Mapped[optional_timestamp]
    is_open: Mapped[bool] = mapped_column(Boolean(), default=True, index=True)

    authorisation: Mapped[ChangeAuthorisation] = relationship(back_populates="objections", lazy="raise")


@event.listens_for(ListVersion, "before_update")
@event.listens_for(ListVersion, "before_delete")
def _versions_are_immutable(_mapper: object, _connection: object, target: ListVersion) -> None:
    """A published version is evidence of what clients were told: nothing in the portal may change or delete it."""
    raise ImmutableVersion(f"sub-processor list version {target.number} is published and cannot change")


class ImmutableVersion(RuntimeError):
    pass
