"""The one place tenant filters are written.

A tenant is an organisation. Tenant-owned models mix in ``TenantScoped``; every query for them goes through
``scoped()`` or ``get_scoped()`` here, and ``tests/test_tenancy_lint.py`` fails on a hand-written ``org_id`` filter
anywhere else. Vendor staff may see every client organisation (they administer them); a client only ever sees its
own. Anything outside what an actor may see answers 404, never 403, so ids of other tenants leak nothing.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import ForeignKey, Select, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from portal.errors import NotFound

if TYPE_CHECKING:
    from portal.accounts.models import Organisation


class TenantScoped:
    """Mixin for rows that belong to exactly one organisation."""

    @declared_attr
    def org_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)


class PossiblyTenantScoped:
    """Mixin for rows that belong to one organisation or, when ``org_id`` is null, to no tenant (public rows,
    e.g. notices to public subscribers). Scoping them to an organisation never returns the public rows."""

    @declared_attr
    def org_id(cls) -> Mapped[uuid.UUID | None]:  # noqa: N805 - declared_attr receives the class
        return mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True, nullable=True)


Scopable = type[TenantScoped] | type[PossiblyTenantScoped]
T = TypeVar("T", bound=TenantScoped)
S = TypeVar("S", bound=Select[*tuple[Any, ...]])


def scoped(statement: S, model: Scopable, org: Organisation) -> S:
    """Restrict ``statement`` to rows of ``model`` that belong to ``org``."""
    return statement.where(model.org_id == org.id)


def scoped_to_ids(statement: S, model: Scopable, org_ids: list[uuid.UUID]) -> S:
    """Restrict ``statement`` to rows of ``model`` owned by any of ``org_ids``."""
    return statement.where(model.org_id.in_(org_ids))


async def get_scoped(session: AsyncSession, model: type[T], object_id: uuid.UUID | str, org: Organisation,
                     *options: Any) -> T:
    """Load one row of ``org`` by id, or raise 404 (also for a malformed id or another tenant's row)."""
    try:
        key = object_id if isinstance(object_id, uuid.UUID) else uuid.UUID(str(object_id))
    except ValueError:
        raise NotFound() from None
    statement = scoped(select(model).where(model.id == key), model, org)  # type: ignore[attr-defined]
    if options:
        statement = statement.options(*options)
    found = (await session.execute(statement)).scalar_one_or_none()
    if found is None:
        raise NotFound()
    return found


def can_see_org(viewer: Organisation, target: Organisation) -> bool:
    """Vendor staff see every organisation; anyone else only their own."""
    return viewer.is_vendor or viewer.id == target.id
