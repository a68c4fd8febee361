"""Publishing a version of the commitments and telling everyone: each client as it stands, and the public.

Invariants (legal requirement 57):
- every client organisation gets a notice of its own, in the publishing transaction, classified against the version
  applying to that client: a version that widens it is a direct notice asking the client's admin to accept it (it
  applies to the client only then); any other says it applies on its effective date;
- public subscribers to ``ai_commitments`` get one notice linking the public version page;
- each notice names the version as its subject, so the vendor's board shows when each client was told;
- vendor staff (``VIEW_CLIENTS``) see the board; clients only ever see their own standing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts import service as accounts_service
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.ai_commitments import ledger, standing
from portal.ai_commitments.models import CommitmentVersion
from portal.audit.service import subject_type_of
from portal.notifications import catalog
from portal.notifications.models import Notice
from portal.notifications.service import notify
from portal.settings import Settings
from portal.tenancy import scoped_to_ids


async def publish(session: AsyncSession, *, actor: Actor, draft_id: str, effective_date: str, reason: str,
                  settings: Settings) -> CommitmentVersion:
    """Publish the draft as the next version and queue its notices."""
    version = await ledger.publish(session, actor=actor, draft_id=draft_id, effective_date=effective_date,
                                   reason=reason)
    await announce(session, actor=actor, version=version, settings=settings)
    return version


def _summary(version: CommitmentVersion, widening: tuple[str, ...]) -> str:
    assert version.effective_date is not None
    text = f"Why: {version.reason}\nEffective date: {version.effective_date.isoformat()}"
    if widening:
        text += "\n\nWhat it widens for you:\n" + "\n".join(f"- {reason}" for reason in widening)
    return text


async def announce(session: AsyncSession, *, actor: Actor, version: CommitmentVersion, settings: Settings) -> None:
    assert version.number is not None
    assert version.effective_date is not None
    for position in await standing.standings(session, await accounts_service.all_clients(session)):
        widens = position.waiting
        await notify(session, actor=actor, orgs=[position.org], subject=version,
                     content=catalog.ai_commitment_change(
                         version=version.number, effective_date=version.effective_date, expanding=widens,
                         summary=_summary(version, position.widening if widens else ()),
                         link=f"{settings.base_url}/orgs/{position.org.id}/ai-commitments"))
    await notify(session, actor=actor, orgs=[], include_public=True, subject=version,
                 content=catalog.ai_commitment_change(
                     version=version.number, effective_date=version.effective_date, expanding=version.expanding,
                     summary=_summary(version, tuple(version.expanding_reasons)),
                     link=f"{settings.base_url}/ai-commitments/versions/{version.number}"))


@dataclass(frozen=True)
class BoardRow:
    position: standing.Standing
    notice: Notice | None  # the client's notice of the newest version


async def board(session: AsyncSession, *, actor: Actor) -> list[BoardRow]:
    """Every client: the version applying to it, where it stands on the newest version, and when it was told."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    orgs = await accounts_service.all_clients(session)
    positions = await standing.standings(session, orgs)
    newest = positions[0].newest if positions else None
    sent = await notices_of(session, newest, orgs) if newest is not None else {}
    return [BoardRow(position, sent.get(position.org.id)) for position in positions]


async def notices_of(session: AsyncSession, version: CommitmentVersion,
                     orgs: list[Organisation]) -> dict[uuid.UUID, Notice]:
    """Each client's notice of ``version``, by organisation."""
    rows = (await session.execute(scoped_to_ids(
        select(Notice).where(Notice.type == catalog.NoticeType.AI_COMMITMENT_CHANGE.value,
                             Notice.subject_type == subject_type_of(version), Notice.subject_id == str(version.id))
        .order_by(Notice.created_at), Notice, [org.id for org in orgs]))).scalars()
    return {row.org_id: row for row in rows if row.org_id is not None}
