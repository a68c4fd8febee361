"""A client's data processing agreement, as far as the portal's duties depend on it.

Invariants:
- a client organisation has at most one ``active`` agreement (a partial unique index); recording a new one ends
  the previous one, which stays as history;
- ``notice_days`` is the period the agreement sets for sub-processor changes (null: the portal's default,
  ``PORTAL_SUBPROCESSOR_NOTICE_DAYS``); ``subprocessor_authorisation`` is Clause 7.7(a) of Decision 2021/915:
  under ``general`` authorisation silence by the deadline is consent, under ``specific`` it is not;
- agreements signed outside the portal are recorded by vendor staff (``source = recorded``); the signing ceremony
  adds its own source.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Date, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation
from portal.db import Base, StrEnumColumn, created_at, optional_timestamp, short_text, uuid_pk
from portal.tenancy import TenantScoped


class Authorisation(enum.StrEnum):
    GENERAL = "general"  # Option 2: an agreed list, changes notified in advance, the client may object
    SPECIFIC = "specific"  # Option 1: each new sub-processor needs the client's explicit approval

    @property
    def label(self) -> str:
        return {"general": "General written authorisation (object within the notice period)",
                "specific": "Prior specific authorisation (explicit approval needed)"}[self.value]


class AgreementStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class AgreementSource(enum.StrEnum):
    RECORDED = "recorded"  # signed outside the portal and recorded by vendor staff


class Agreement(TenantScoped, Base):
    __tablename__ = "agreements"
    __table_args__ = (
        Index("uq_agreements_one_active", "org_id", unique=True,
              postgresql_where=text("status = 'active'"), sqlite_where=text("status = 'active'")),
    )

    id: Mapped[uuid_pk]
    reference: Mapped[short_text]
    signed_on: Mapped[dt.date] = mapped_column(Date())
    source: Mapped[AgreementSource] = mapped_column(StrEnumColumn(AgreementSource, 20))
    subprocessor_authorisation: Mapped[Authorisation] = mapped_column(StrEnumColumn(Authorisation, 20))
    notice_days: Mapped[int | None] = mapped_column(Integer(), nullable=True)
    status: Mapped[AgreementStatus] = mapped_column(StrEnumColumn(AgreementStatus, 20), default=AgreementStatus.ACTIVE)
    recorded_by: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[created_at]
    ended_at: Mapped[optional_timestamp]
    end_reason: Mapped[str] = mapped_column(String(500), default="")

    org: Mapped[Organisation] = relationship(lazy="raise")

    def notice_days_or(self, default: int) -> int:
        return self.notice_days if self.notice_days is not None else default
