"""Audit events and the head of their hash chain.

Invariants:
- events are only ever inserted; ``seq`` numbers them 1, 2, 3... without gaps;
- ``hash = sha256(prev_hash + canonical_json(event))`` and ``prev_hash`` is the hash of event ``seq - 1``
  (64 zeros for the first);
- the single ``audit_head`` row holds the last ``seq`` and hash; writers lock it, so concurrent transactions append
  one after another instead of forking the chain, and deleting the newest events is still detected.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, UTCDateTime

GENESIS_HASH = "0" * 64


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True,
                                     autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(unique=True, default=uuid.uuid4)
    occurred_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), index=True)
    # No foreign keys: the trail must outlive the users and organisations it speaks of.
    org_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    actor_id: Mapped[uuid.UUID | None]
    actor: Mapped[str] = mapped_column(String(400))  # "user:alice@x", "token:ci-reader", "system", "cli"
    tag: Mapped[str] = mapped_column(String(80), index=True)
    subject_type: Mapped[str] = mapped_column(String(80))
    subject_id: Mapped[str] = mapped_column(String(80))
    data: Mapped[dict[str, Any]]
    ip: Mapped[str] = mapped_column(String(64), default="")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))

