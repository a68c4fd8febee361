"""DPA template versions.

Invariants:
- an uploaded template is a ``draft`` until vendor legal publishes it; publishing gives it the next number and a
  changelog, and from then on the row is evidence of what clients were offered: the ORM refuses to change or delete
  a published version (``ImmutableTemplate``);
- ``sha256`` is over exactly the stored DOCX bytes; ``placeholders`` are the catalog names the template uses,
  found when it was validated.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Integer, LargeBinary, String, Text, event, inspect
from sqlalchemy.orm import Mapped, mapped_column

from portal.db import Base, StrEnumColumn, created_at, optional_timestamp, uuid_pk


class TemplateStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class TemplateVersion(Base):
    """One uploaded DOCX template (vendor-wide: templates belong to no tenant)."""

    __tablename__ = "dpa_template_versions"

    id: Mapped[uuid_pk]
    number: Mapped[int | None] = mapped_column(Integer(), unique=True, nullable=True)  # set when published
    status: Mapped[TemplateStatus] = mapped_column(StrEnumColumn(TemplateStatus, 20), default=TemplateStatus.DRAFT)
    filename: Mapped[str] = mapped_column(String(255))
    docx: Mapped[bytes] = mapped_column(LargeBinary())
    sha256: Mapped[str] = mapped_column(String(64))
    placeholders: Mapped[list[str]]
    changelog: Mapped[str] = mapped_column(Text(), default="")
    uploaded_by: Mapped[str] = mapped_column(String(400))
    uploaded_at: Mapped[created_at]
    published_by: Mapped[str] = mapped_column(String(400), default="")
    published_at: Mapped[optional_timestamp]

    @property
    def label(self) -> str:
        return f"version {self.number}" if self.number is not None else f"draft of {self.uploaded_at:%Y-%m-%d %H:%M}"


class ImmutableTemplate(RuntimeError):
    pass


@event.listens_for(TemplateVersion, "before_update")
def _published_versions_do_not_change(_mapper: object, _connection: object, target: TemplateVersion) -> None:
    history = inspect(target).attrs.status.history
    was = history.deleted[0] if history.deleted else target.status
    if was is TemplateStatus.PUBLISHED:
        raise ImmutableTemplate(f"DPA template version {target.number} is published and cannot change")


@event.listens_for(TemplateVersion, "before_delete")
def _published_versions_stay(_mapper: object, _connection: object, target: TemplateVersion) -> None:
    if target.status is TemplateStatus.PUBLISHED:
        raise ImmutableTemplate(f"DPA template version {target.number} is published and cannot be deleted")


class VendorProfile(Base):
    """The vendor's own party details for every agreement (catalog fields from ``Source.VENDOR``): one row."""

    __tablename__ = "dpa_vendor_profile"

    id: Mapped[int] = mapped_column(Integer(), primary_key=True, default=1)
    values: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_by: Mapped[str] = mapped_column(String(400), default="")
    updated_at: Mapped[optional_timestamp]
