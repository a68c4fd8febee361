"""The incident register and the breach notices sent to each affected client.

Invariants:
- an incident has the processor's awareness time and a contact point from the start (legal requirement 41); one
  from a sub-processor also records when that sub-processor told the vendor (requirement 49);
- internal notes never leave the vendor: no notice, client page or client API reads them;
- a breach notice belongs to one client and carries only that client's figures (requirement 47); notices of an
  incident to a client are numbered in order, and each records what changed since the one before (requirement 46);
- notices and closed incidents are records: the ORM refuses to change a sent notice or delete an incident, and a
  closed incident is never reopened (requirement 51);
- the incident's ``org_id``-free rows belong to the vendor; ``AffectedClient`` and ``BreachNotice`` are tenant rows.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, event, inspect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation
from portal.db import Base, StrEnumColumn, created_at, optional_timestamp, short_text, timestamp, uuid_pk
from portal.tenancy import TenantScoped

UNKNOWN = "Not yet known, under investigation"


class Nature(enum.StrEnum):
    CONFIDENTIALITY = "confidentiality"  # unauthorised or accidental disclosure of, or access to, personal data
    INTEGRITY = "integrity"  # unauthorised or accidental alteration
    AVAILABILITY = "availability"  # accidental or unauthorised loss of access or destruction

    @property
    def label(self) -> str:
        return {"confidentiality": "Confidentiality (disclosure or access)",
                "integrity": "Integrity (alteration)",
                "availability": "Availability (loss or destruction)"}[self.value]


class IncidentStatus(enum.StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Closure(enum.StrEnum):
    BREACH_HANDLED = "breach_handled"  # a personal data breach, notified and dealt with
    NOT_A_BREACH = "not_a_breach"  # a security incident that was not a personal data breach
    NO_CLIENT_AFFECTED = "no_client_affected"  # a breach that touched no client's personal data

    @property
    def label(self) -> str:
        return {"breach_handled": "Personal data breach, notified and handled",
                "not_a_breach": "Not a personal data breach",
                "no_client_affected": "No client's personal data affected"}[self.value]


class Phase(enum.StrEnum):
    INITIAL = "initial"
    INTERIM = "interim"
    FINAL = "final"


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[uuid_pk]
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    title: Mapped[short_text]
    aware_at: Mapped[timestamp]
    detected_at: Mapped[timestamp]
    occurred_at: Mapped[optional_timestamp]
    natures: Mapped[list[str]]
    summary: Mapped[str] = mapped_column(Text())  # what happened, as clients will read it
    source: Mapped[str] = mapped_column(String(20))  # "own" or "subprocessor"
    subprocessor_name: Mapped[str] = mapped_column(String(200), default="")
    subprocessor_notified_at: Mapped[optional_timestamp]
    contact_point: Mapped[str] = mapped_column(String(500))
    internal_notes: Mapped[str] = mapped_column(Text(), default="")  # never shown to clients
    status: Mapped[IncidentStatus] = mapped_column(StrEnumColumn(IncidentStatus, 10), default=IncidentStatus.OPEN)
    closure: Mapped[Closure | None] = mapped_column(StrEnumColumn(Closure, 30), nullable=True)
    closure_rationale: Mapped[str] = mapped_column(Text(), default="")
    closed_at: Mapped[optional_timestamp]
    closed_by: Mapped[str] = mapped_column(String(400), default="")
    created_by: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[created_at]

    @property
    def from_subprocessor(self) -> bool:
        return self.source == "subprocessor"


class AffectedClient(TenantScoped, Base):
    __tablename__ = "incident_clients"
    __table_args__ = (UniqueConstraint("incident_id", "org_id"),)

    id: Mapped[uuid_pk]
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    reason: Mapped[str] = mapped_column(String(300))  # how it was chosen: "all clients", "uses Mistral AI", ...
    added_by: Mapped[str] = mapped_column(String(400))
    added_at: Mapped[created_at]

    org: Mapped[Organisation] = relationship(lazy="raise")


class BreachNotice(TenantScoped, Base):
    """One notice of an incident to one client, with the Art. 33(3) content as far as it is known."""

    __tablename__ = "breach_notices"
    __table_args__ = (UniqueConstraint("incident_id", "org_id", "seq"),)

    id: Mapped[uuid_pk]
    incident_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer())
    phase: Mapped[Phase] = mapped_column(StrEnumColumn(Phase, 10))
    content: Mapped[dict[str, Any]]  # field -> text, see ``portal.breaches.content.FIELDS``
    changes: Mapped[dict[str, Any]]  # field -> {"before": ..., "after": ...} against the previous notice
    notified_at: Mapped[timestamp]
    notice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("notices.id", ondelete="SET NULL"), nullable=True)
    acknowledged_at: Mapped[optional_timestamp]
    acknowledged_by: Mapped[str] = mapped_column(String(400), default="")
    created_by: Mapped[str] = mapped_column(String(400))


class ImmutableRecord(RuntimeError):
    pass


@event.listens_for(BreachNotice, "before_update")
def _sent_notices_keep_their_content(_mapper: object, _connection: object, target: BreachNotice) -> None:
    state = inspect(target)
    changed = {attr.key for attr in state.attrs if attr.history.has_changes()}
    if changed - {"acknowledged_at", "acknowledged_by", "notice_id"}:
        raise ImmutableRecord(f"breach notice {target.id} was sent and cannot change")


@event.listens_for(BreachNotice, "before_delete")
@event.listens_for(Incident, "before_delete")
def _records_stay(_mapper: object, _connection: object, target: object) -> None:
    raise ImmutableRecord(f"{type(target).__name__} {getattr(target, 'id', '')} is a record and cannot be deleted")
