"""What the list said on a given day (legal requirement 32): the version in force before, on, between and after
effective dates, and the versions still to come."""

from __future__ import annotations

import datetime as dt

import pytest

from portal.db import utcnow
from portal.subprocessors import publishing, registry
from tests.subprocessors.support import entry_data, publish, vendor_legal

TODAY = utcnow().date()
MIDNIGHT = dt.time(tzinfo=dt.UTC)


def ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def announced(days_ago: int) -> dt.datetime:
    return dt.datetime.combine(ago(days_ago), MIDNIGHT)


@pytest.fixture
async def history(world, db):
    """Three versions announced in the past, each taking effect on its own past date, and one still to come:

    v1 announced 300 days ago, in force from 270 days ago: Hostwerk
    v2 announced 200 days ago, in force from 150 days ago: Hostwerk, Tokenwerk
    v3 announced 100 days ago, in force from  70 days ago: Tokenwerk, Atlas Mail (Hostwerk removed)
    v4 announced today,        in force in 45 days:        Tokenwerk, Atlas Mail, Borealis Cloud
    """
    actor = await vendor_legal(world)
    v1 = await publish(world, actor, "Hostwerk GmbH", now=announced(300), effective=ago(270))
    v2 = await publish(world, actor, "Tokenwerk AG", now=announced(200), effective=ago(150))
    hostwerk = next(e for e in registry.entries_of(v2) if e["name"] == "Hostwerk GmbH")
    await publishing.draft_removal(db, actor=actor, entry_id=hostwerk["id"])
    v3 = await publish(world, actor, "Atlas Mail SA", now=announced(100), effective=ago(70))
    v4 = await publish(world, actor, entry_data("Borealis Cloud"), now=announced(0),
                       effective=TODAY + dt.timedelta(days=45))
    return v1, v2, v3, v4


async def _names_on(db, day: dt.date) -> list[str] | None:
    version = await registry.in_force_on(db, day)
    return None if version is None else [e["name"] for e in registry.entries_of(version)]


async def test_nothing_is_in_force_before_the_first_version(db, history):
    assert await registry.in_force_on(db, ago(271)) is None
    assert await registry.in_force_on(db, ago(300)) is None  # announced, not yet in force


@pytest.mark.parametrize(("day", "number"), [
    (270, 1),  # the first version's effective date
    (269, 1),
    (200, 1),  # the second version is announced but not yet in force
    (151, 1),  # the day before the second takes effect
    (150, 2),  # its effective date
    (100, 2),  # between versions, the third just announced
    (71, 2),
    (70, 3),
    (1, 3),
    (0, 3),  # today: the fourth is only announced
])
async def test_the_version_in_force_on_each_day(db, history, day, number):
    version = await registry.in_force_on(db, ago(day))

    assert version is not None and version.number == number
    assert version.id == history[number - 1].id


async def test_the_list_in_force_holds_exactly_that_versions_entries(db, history):
    assert await _names_on(db, ago(270)) == ["Hostwerk GmbH"]
    assert await _names_on(db, ago(150)) == ["Hostwerk GmbH", "Tokenwerk AG"]
    assert await _names_on(db, ago(70)) == ["Atlas Mail SA", "Tokenwerk AG"]
    assert await _names_on(db, TODAY + dt.timedelta(days=45)) == ["Atlas Mail SA", "Borealis Cloud", "Tokenwerk AG"]
    assert await _names_on(db, TODAY + dt.timedelta(days=4000)) == ["Atlas Mail SA", "Borealis Cloud",
                                                                    "Tokenwerk AG"]


async def test_upcoming_lists_only_versions_not_yet_in_force(db, history):
    v4 = history[-1]

    assert [v.number for v in await registry.upcoming_after(db, TODAY)] == [4]
    assert [v.number for v in await registry.upcoming_after(db, ago(100))] == [3, 4]
    assert [v.number for v in await registry.upcoming_after(db, ago(150))] == [3, 4]  # v2 is in force that day
    assert [v.number for v in await registry.upcoming_after(db, ago(151))] == [2, 3, 4]
    assert [v.number for v in await registry.upcoming_after(db, ago(400))] == [1, 2, 3, 4]
    assert await registry.upcoming_after(db, v4.effective_date) == []


async def test_two_versions_on_the_same_day_the_newer_is_in_force(world, db):
    actor = await vendor_legal(world)
    await publish(world, actor, "Hostwerk GmbH", now=announced(100), effective=ago(60))
    second = await publish(world, actor, "Tokenwerk AG", now=announced(90), effective=ago(60))

    in_force = await registry.in_force_on(db, ago(60))

    assert in_force is not None and in_force.id == second.id
    assert await _names_on(db, ago(61)) is None
