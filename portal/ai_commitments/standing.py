"""Which version of the AI commitments applies to a client on a day, and where each client stands on the newest.

Invariants (legal requirement 57):
- a client starts on the version that was published and in effect when it joined the portal; one that joined
  before any was, starts on the first version when it takes effect;
- after that, each later version is classified against the version *applying to the client* (not against the one
  before it): one that does not widen it applies from its effective date; one that widens it applies only once the
  client accepted it, from its effective date or the day of acceptance, whichever is later;
- the periods of a client's timeline start in version order and never before the previous one, so on any day
  exactly one version (or none, before the first) applies, and nothing a client did not accept ever applies;
- a decline changes nothing of what applies (as no answer): it only tells the vendor the client said no, and why.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.ai_commitments import ledger
from portal.ai_commitments.document import classify
from portal.ai_commitments.models import Acceptance, CommitmentVersion, Decline
from portal.db import utcnow
from portal.tenancy import scoped_to_ids


class State(enum.StrEnum):
    """Where a client stands on the newest version."""

    IN_EFFECT = "in_effect"  # it applies to the client
    SCHEDULED = "scheduled"  # it does not widen the client's version: it applies on its effective date
    PENDING_ACCEPTANCE = "pending_acceptance"  # it widens the client's version: it waits for the client
    DECLINED = "declined"  # it widens the client's version and the client said no (it may still accept)
    ACCEPTED = "accepted"  # the client accepted it: it applies on its effective date

    @property
    def label(self) -> str:
        return STATE_LABELS[self]


STATE_LABELS = {
    State.IN_EFFECT: "In effect",
    State.SCHEDULED: "Applies on its date",
    State.PENDING_ACCEPTANCE: "Waiting for the client's acceptance",
    State.DECLINED: "Declined by the client",
    State.ACCEPTED: "Accepted, applies on its date",
}


@dataclass(frozen=True)
class Period:
    version: CommitmentVersion
    start: dt.date
    accepted: Acceptance | None  # the acceptance that made it apply; None when it applied on its date


@dataclass(frozen=True)
class Standing:
    org: Organisation
    timeline: tuple[Period, ...]
    applied: Period | None  # what applies today; None before the first version takes effect
    newest: CommitmentVersion | None
    state: State | None  # of the newest version; None when nothing is published
    widening: tuple[str, ...]  # what the newest widens against the client's version, in words
    acceptances: dict[int, Acceptance]  # by version number
    declines: dict[int, Decline]  # by version number

    @property
    def waiting(self) -> bool:
        """The newest version widens what applies to the client and has not been accepted (declined or not)."""
        return self.state in (State.PENDING_ACCEPTANCE, State.DECLINED)

    def on(self, day: dt.date) -> Period | None:
        """The period in force on ``day`` (None before the first)."""
        return period_on(self.timeline, day)


def period_on(timeline: Sequence[Period], day: dt.date) -> Period | None:
    found = None
    for period in timeline:
        if period.start > day:
            break
        found = period
    return found


def timeline_of(published: Sequence[CommitmentVersion], *, joined: dt.datetime,
                accepted: dict[int, Acceptance]) -> tuple[Period, ...]:
    """The client's periods, oldest first, from the published versions (in number order) and its acceptances."""
    first = joined_on(published, joined)
    periods: list[Period] = []
    for version in published[first:]:
        assert version.effective_date is not None
        assert version.number is not None
        if not periods:
            periods.append(Period(version, version.effective_date, accepted.get(version.number)))
            continue
        current = periods[-1]
        if version.number in accepted:
            start = max(version.effective_date, accepted[version.number].accepted_at.date(), current.start)
            periods.append(Period(version, start, accepted[version.number]))
        elif not classify(current.version.document, version.document).expanding:
            periods.append(Period(version, max(version.effective_date, current.start), None))
    return tuple(periods)


def joined_on(published: Sequence[CommitmentVersion], joined: dt.datetime) -> int:
    """The index of the version a client joining at ``joined`` starts on: the newest already published and in
    effect then, else the first."""
    index = 0
    for position, version in enumerate(published):
        if (version.published_at is not None and version.published_at <= joined
                and version.effective_date is not None and version.effective_date <= joined.date()):
            index = position
    return index


RecordT = TypeVar("RecordT", Acceptance, Decline)


async def records_of(session: AsyncSession, model: type[RecordT],
                     orgs: Sequence[Organisation]) -> dict[uuid.UUID, dict[int, RecordT]]:
    """Each organisation's acceptances (or declines), by version number."""
    rows = (await session.execute(scoped_to_ids(select(model).order_by(model.number), model,
                                                [org.id for org in orgs]))).scalars()
    found: dict[uuid.UUID, dict[int, RecordT]] = {org.id: {} for org in orgs}
    for row in rows:
        found[row.org_id][row.number] = row
    return found


async def standings(session: AsyncSession, orgs: Sequence[Organisation],
                    today: dt.date | None = None) -> list[Standing]:
    """Each client's timeline and where it stands on the newest version, with three queries for all of them."""
    published = await ledger.versions(session)
    accepted, declined = await records_of(session, Acceptance, orgs), await records_of(session, Decline, orgs)
    day = today or utcnow().date()
    return [_standing(org, published, accepted[org.id], declined[org.id], day) for org in orgs]


async def standing_of(session: AsyncSession, org: Organisation, today: dt.date | None = None) -> Standing:
    [found] = await standings(session, [org], today)
    return found


async def applying_to(session: AsyncSession, org: Organisation, day: dt.date) -> CommitmentVersion | None:
    """The version applying to ``org`` on ``day`` (the one its Annex V and its instructions go by)."""
    period = (await standing_of(session, org, day)).on(day)
    return period.version if period else None


def _standing(org: Organisation, published: list[CommitmentVersion], accepted: dict[int, Acceptance],
              declined: dict[int, Decline], day: dt.date) -> Standing:
    timeline = timeline_of(published, joined=org.created_at, accepted=accepted)
    applied = period_on(timeline, day)
    newest = published[-1] if published else None
    if newest is None:
        return Standing(org, timeline, applied, None, None, (), accepted, declined)
    listed = [period.version.number for period in timeline]
    widening: tuple[str, ...] = ()
    if newest.number in listed:
        starts = timeline[listed.index(newest.number)].start
        upcoming = State.ACCEPTED if newest.number in accepted else State.SCHEDULED
        state = State.IN_EFFECT if starts <= day else upcoming
    else:
        base = timeline[-1].version.document if timeline else None
        widening = classify(base, newest.document).reasons
        state = State.DECLINED if newest.number in declined else State.PENDING_ACCEPTANCE
    return Standing(org, timeline, applied, newest, state, widening, accepted, declined)
