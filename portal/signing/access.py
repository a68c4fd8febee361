"""Finding a client's agreements and moving them between states: what the ceremony's steps share.

Invariants: an agreement is found only for its own organisation's members and the vendor's staff (404 for anyone
else); a state change is one conditional UPDATE from the state it leaves, so of two requests racing for the same
step exactly one succeeds (``move``).
"""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.accounts.roles import Permission, Role
from portal.actors import Actor
from portal.agreements.models import Agreement, AgreementStatus
from portal.dpa.models import TemplateVersion
from portal.errors import Forbidden, NotFound
from portal.settings import Settings
from portal.tenancy import get_scoped, scoped


def link(settings: Settings, agreement: Agreement) -> str:
    return f"{settings.base_url}/orgs/{agreement.org_id}/agreements/{agreement.id}"


# ---------------------------------------------------------------- finding agreements

WITH_DOCUMENT = (undefer(Agreement.document_docx), undefer(Agreement.document_context))


async def agreement_of(session: AsyncSession, *, actor: Actor, org: Organisation,
                       agreement_id: uuid.UUID | str) -> Agreement:
    """One of ``org``'s agreements for its own members and vendor staff (404 for anyone else)."""
    if actor.org is None or (actor.org.id != org.id and not actor.org.is_vendor):
        raise NotFound()
    return await get_scoped(session, Agreement, agreement_id, org, *WITH_DOCUMENT)


async def open_agreement(session: AsyncSession, org: Organisation) -> Agreement | None:
    return (await session.execute(scoped(
        select(Agreement).where(Agreement.status.in_(sorted(s.value for s in AgreementStatus if s.is_open)))
        .options(*WITH_DOCUMENT), Agreement, org))).scalar_one_or_none()


async def latest_in_portal(session: AsyncSession, org: Organisation) -> Agreement | None:
    """``org``'s newest agreement prepared in the portal (whatever became of it): where its details last stood."""
    return (await session.execute(scoped(
        select(Agreement).where(Agreement.template_version_id.is_not(None)).order_by(Agreement.created_at.desc())
        .limit(1), Agreement, org))).scalar_one_or_none()


async def signatories(session: AsyncSession, org: Organisation) -> list[User]:
    """The people of ``org`` who may sign agreements, by name."""
    rows = await session.execute(scoped(
        select(User).join(Membership, Membership.user_id == User.id).join(MembershipRole)
        .where(MembershipRole.role == Role.SIGNATORY, User.disabled_at.is_(None)).order_by(User.name),
        Membership, org))
    return list(rows.scalars().unique())


async def template_of(session: AsyncSession, agreement: Agreement) -> TemplateVersion:
    template = await session.get(TemplateVersion, agreement.template_version_id)
    if template is None:
        raise NotFound()
    return template


def require_client(actor: Actor, org: Organisation, permission: Permission) -> None:
    """Members of ``org`` holding ``permission``; vendor staff and others act here only through their own paths."""
    if actor.org is None or actor.org.id != org.id:
        if actor.org is not None and actor.org.is_vendor:
            raise Forbidden("Only the client's own people do this.")
        raise NotFound()
    actor.require(permission)


async def move(session: AsyncSession, agreement: Agreement, source: AgreementStatus, target: AgreementStatus,
                **values: object) -> bool:
    """Move ``agreement`` from ``source`` to ``target`` if it is still there; False when another request did first."""
    done = await session.execute(
        update(Agreement).where(Agreement.id == agreement.id, Agreement.status == source.value)
        .values(status=target.value, **values).execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    await session.refresh(agreement, ["status", *values])
    return True
