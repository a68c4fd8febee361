"""Publishing drafts as an immutable list version (legal requirements 30, 34, 35, 36, 39): what stops it, the
notice period per client, the hashed snapshot, each client's pending authorisation and the notices."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import Authorisation
from portal.audit.models import AuditEvent
from portal.db import make_sessionmaker, utcnow
from portal.errors import Forbidden, InvalidInput
from portal.notifications.models import Channel, Delivery, Notice
from portal.subprocessors import entries, publishing, registry
from portal.subprocessors.models import (
    AuthorisationState,
    ChangeAuthorisation,
    ChangeKind,
    DraftChange,
    ImmutableVersion,
    ListVersion,
)
from tests.subprocessors.support import BASE_URL, agreement, entry_data, loaded, publish, vendor_legal

# A fixed announcement time, noon UTC today: deadlines and dates below are exact.
NOW = dt.datetime.combine(utcnow().date(), dt.time(12), tzinfo=dt.UTC)
MIDNIGHT = dt.datetime.combine(utcnow().date(), dt.time(), tzinfo=dt.UTC)
TODAY = NOW.date()


def days(n: int) -> dt.date:
    return TODAY + dt.timedelta(days=n)


async def _count(db, model) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


async def _client(world, name: str, *, notice_days: int | None = None, authorisation: str = "general",
                  privacy_contact: bool = True) -> Organisation:
    """A client with an admin, a privacy contact (unless told otherwise) and an active agreement."""
    org = await world.client_org(name)
    await world.person(org, Role.ADMIN, email=f"admin@{org.slug}.example")
    if privacy_contact:
        await world.person(org, Role.PRIVACY_CONTACT, email=f"privacy@{org.slug}.example")
    await agreement(world, org, days=notice_days, authorisation=authorisation)
    return org


async def _publish_drafts(world, actor, effective: dt.date, *, now: dt.datetime = NOW) -> ListVersion:
    version = await publishing.publish(world.session, actor=actor, effective_date=effective.isoformat(), summary="",
                                       default_notice_days=30, base_url=BASE_URL, now=now)
    await world.commit()
    return version


async def _refused_publish(world, engine, actor, effective: dt.date | str, *,
                           now: dt.datetime = NOW) -> InvalidInput:
    """Publish in a session of its own, as a request would, expecting a refusal that leaves no version and keeps
    the drafts."""
    drafts = await _count(world.session, DraftChange)
    versions = await _count(world.session, ListVersion)
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(InvalidInput) as refused:
            await publishing.publish(session, actor=actor, summary="", default_notice_days=30, base_url=BASE_URL,
                                     effective_date=effective if isinstance(effective, str) else effective.isoformat(),
                                     now=now)
        await session.rollback()
    assert await _count(world.session, ListVersion) == versions
    assert await _count(world.session, DraftChange) == drafts
    return refused.value


async def _draft(world, actor, *names_or_data) -> None:
    for item in names_or_data:
        data = entry_data(item) if isinstance(item, str) else item
        await publishing.draft_entry(world.session, actor=actor, raw=data)
    await world.commit()


# ---------------------------------------------------------------- what stops publishing

@pytest.mark.parametrize("missing", ["flow_down_reference", "flow_down_date"])
async def test_an_entry_needs_its_flow_down_contract_before_it_is_published(world, engine, missing):
    actor = await vendor_legal(world)
    await _draft(world, actor, "Hostwerk GmbH", entry_data("Tokenwerk AG", **{missing: ""}))

    error = await _refused_publish(world, engine, actor, days(30))

    assert "Tokenwerk AG" in error.message
    assert "flow-down" in error.message
    assert "Hostwerk" not in error.message


async def test_nothing_to_publish_is_refused(world, engine):
    actor = await vendor_legal(world)

    error = await _refused_publish(world, engine, actor, days(30))

    assert "nothing to publish" in error.message


async def test_a_malformed_effective_date_is_refused(world, engine):
    actor = await vendor_legal(world)
    await _draft(world, actor, "Hostwerk GmbH")

    error = await _refused_publish(world, engine, actor, "next month")

    assert "effective_date" in error.fields


async def test_a_summary_over_its_limit_is_refused(world, engine):
    actor = await vendor_legal(world)
    await _draft(world, actor, "Hostwerk GmbH")

    with pytest.raises(InvalidInput) as refused:
        await publishing.publish(world.session, actor=actor, effective_date=days(30).isoformat(), summary="s" * 2001,
                                 default_notice_days=30, base_url=BASE_URL, now=NOW)

    assert "summary" in refused.value.fields
    assert await _count(world.session, ListVersion) == 0


async def test_the_default_notice_period_is_thirty_whole_days(world, engine):
    """Announced at noon, a change effective at midnight 30 days later would have had 29.5 days' notice: the
    first date allowed is the day after (legal requirement 34: effective - notified >= 30 days)."""
    actor = await vendor_legal(world)
    await _draft(world, actor, "Hostwerk GmbH")

    errors = [await _refused_publish(world, engine, actor, day) for day in (days(29), days(30))]
    version = await _publish_drafts(world, actor, days(31))

    for error in errors:
        assert days(31).isoformat() in error.message and "30 days" in error.message
        assert error.fields["effective_date"] == error.message
    assert (version.effective_date, version.notice_days) == (days(31), 30)
    assert dt.datetime.combine(version.effective_date, dt.time(), tzinfo=dt.UTC) - version.announced_at \
        >= dt.timedelta(days=30)


async def test_announced_at_midnight_thirty_days_later_is_allowed(world, engine):
    actor = await vendor_legal(world)
    await _draft(world, actor, "Hostwerk GmbH")

    await _refused_publish(world, engine, actor, days(29), now=MIDNIGHT)
    version = await _publish_drafts(world, actor, days(30), now=MIDNIGHT)

    assert version.effective_date == days(30)


async def test_a_client_agreement_with_a_longer_period_sets_the_earliest_date(world, engine):
    actor = await vendor_legal(world)
    await _client(world, "Acme Logistics")
    await _client(world, "Borealis Bank", notice_days=60)
    await _draft(world, actor, "Hostwerk GmbH")

    for too_early in (days(31), days(59), days(60)):
        error = await _refused_publish(world, engine, actor, too_early)
        assert days(61).isoformat() in error.message and "60 days" in error.message
    version = await _publish_drafts(world, actor, days(61))

    assert (version.effective_date, version.notice_days) == (days(61), 60)


async def test_an_ended_agreements_longer_period_no_longer_counts(world, db):
    actor = await vendor_legal(world)
    org = await _client(world, "Borealis Bank", notice_days=60)
    [ended] = await agreements.agreements_of(db, org)
    await agreements.end_agreement(db, actor=Actor.system("test"), org=org, agreement_id=str(ended.id),
                                   reason="Contract ended")
    await world.commit()
    await _draft(world, actor, "Hostwerk GmbH")

    version = await _publish_drafts(world, actor, days(31))

    assert version.notice_days == 30


async def test_versions_take_effect_in_order(world, engine):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH", effective=days(90), now=NOW)
    await _draft(world, actor, "Tokenwerk AG")

    error = await _refused_publish(world, engine, actor, days(89))
    second = await _publish_drafts(world, actor, days(90))

    assert days(90).isoformat() in error.message
    assert "version 1" in error.message  # the reason is the version it follows, not a notice period
    assert (first.number, second.number) == (1, 2)


async def test_removals_alone_may_take_effect_at_once(world, db, engine):
    actor = await vendor_legal(world)
    client = await _client(world, "Acme Logistics", notice_days=60)
    earlier = NOW - dt.timedelta(days=90)
    first = await publish(world, actor, "Hostwerk GmbH", "Tokenwerk AG", now=earlier)
    tokenwerk = next(e for e in registry.entries_of(first) if e["name"] == "Tokenwerk AG")
    await publishing.draft_removal(db, actor=actor, entry_id=tokenwerk["id"])
    await world.commit()
    rows_before = await _count(db, ChangeAuthorisation)

    error = await _refused_publish(world, engine, actor, days(-1))  # not before it is announced
    version = await _publish_drafts(world, actor, TODAY)

    assert "before it is announced" in error.message
    assert (version.number, version.effective_date, version.notice_days) == (2, TODAY, 0)
    assert [(c["kind"], c["name"]) for c in version.changes] == [("removed", "Tokenwerk AG")]
    assert [e["name"] for e in registry.entries_of(version)] == ["Hostwerk GmbH"]
    assert not version.needs_notice
    assert await _count(db, ChangeAuthorisation) == rows_before  # no objection window
    notices = (await db.execute(select(Notice).where(Notice.subject_id == str(version.id)))).scalars().all()
    assert {n.org_id for n in notices} == {client.id, None}
    assert [n.context["objection_deadline"] for n in notices] == [None, None]
    assert [n.payload["objection_deadline"] for n in notices] == [None, None]


# ---------------------------------------------------------------- the version

async def test_versions_are_numbered_and_hashed_over_their_canonical_document(world, db):
    actor = await vendor_legal(world)
    published = [await publish(world, actor, name) for name in ("Hostwerk GmbH", "Tokenwerk AG", "Atlas Mail SA")]

    stored = (await db.execute(select(ListVersion).order_by(ListVersion.number)
                               .execution_options(populate_existing=True))).scalars().all()
    assert [v.number for v in stored] == [1, 2, 3]
    for version in stored:
        assert version.sha256 == hashlib.sha256(entries.canonical_bytes(version.document)).hexdigest()
        assert version.document["version"] == version.number
        assert version.document["effective_date"] == version.effective_date.isoformat()
    assert [e["name"] for e in stored[2].document["entries"]] == ["Atlas Mail SA", "Hostwerk GmbH", "Tokenwerk AG"]
    assert [v.sha256 for v in stored] == [v.sha256 for v in published]
    assert len({v.sha256 for v in stored}) == 3
    [event] = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "subprocessor_list:published",
                                                         AuditEvent.subject_id == str(stored[2].id)))).scalars().all()
    assert event.data["sha256"] == stored[2].sha256 and event.data["version"] == 3


async def test_the_orm_refuses_to_update_a_published_version(world, db):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Hostwerk GmbH")
    version_id, sha = version.id, version.sha256

    version.summary = "Quietly rewritten"
    version.document = {**version.document, "entries": []}
    with pytest.raises(ImmutableVersion, match="version 1"):
        await db.flush()
    await db.rollback()

    stored = (await db.execute(select(ListVersion).where(ListVersion.id == version_id)
                               .execution_options(populate_existing=True))).scalar_one()
    assert (stored.summary, stored.sha256, len(stored.document["entries"])) == ("", sha, 1)


async def test_the_orm_refuses_to_delete_a_published_version(world, db):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Hostwerk GmbH")
    version_id = version.id

    await db.delete(version)
    with pytest.raises(ImmutableVersion, match="version 1"):
        await db.flush()
    await db.rollback()

    assert await db.scalar(select(func.count()).where(ListVersion.id == version_id)) == 1


async def test_the_drafts_are_cleared_once_published(world, db):
    actor = await vendor_legal(world)
    await _draft(world, actor, "Hostwerk GmbH", "Tokenwerk AG")
    assert await _count(db, DraftChange) == 2

    await _publish_drafts(world, actor, days(31))

    assert await _count(db, DraftChange) == 0
    assert (await registry.working_copy(db)).drafts == []


async def test_a_replacement_is_one_change_naming_the_replaced_entry(world, db):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH", "Tokenwerk AG")
    old = next(e for e in registry.entries_of(first) if e["name"] == "Hostwerk GmbH")
    await publishing.draft_entry(db, actor=actor, raw=entry_data("Cloudhaus SE"), replaces=old["id"])
    await world.commit()

    version = await _publish_drafts(world, actor, days(31))

    [change] = version.changes
    assert (change["kind"], change["name"], change["replaces"], change["replaces_entry_id"]) == (
        "replaced", "Cloudhaus SE", "Hostwerk GmbH", old["id"])
    assert [e["name"] for e in registry.entries_of(version)] == ["Cloudhaus SE", "Tokenwerk AG"]
    assert old["id"] not in {e["id"] for e in registry.entries_of(version)}


async def test_a_changed_entry_lists_the_fields_that_changed(world, db):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH")
    [entry] = registry.entries_of(first)
    await publishing.draft_entry(db, actor=actor, entry_id=entry["id"], raw=entry_data(
        "Hostwerk GmbH", purpose="Hosting and backups", locations="DE, US", transfer_mechanism="scc_module_3"))
    await world.commit()

    version = await _publish_drafts(world, actor, days(31))

    [change] = version.changes
    assert change["kind"] == "changed" and change["entry_id"] == entry["id"]
    assert change["changed_fields"] == ["Purpose", "Locations (ISO 3166 country codes)", "Transfer mechanism"]
    assert change["locations"] == ["DE", "US"]
    assert change["transfer_mechanism"].startswith("Standard contractual clauses")


async def test_a_sub_sub_processor_is_announced_with_who_engages_it(world, db):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH")
    [parent] = registry.entries_of(first)
    await publishing.draft_entry(db, actor=actor, raw=entry_data(
        "Backupfabrik GmbH", parent_id=parent["id"], transfer_details="Same clauses as the parent"))
    await world.commit()

    version = await _publish_drafts(world, actor, days(31))

    [change] = version.changes
    assert change["engaged_by"] == "Hostwerk GmbH"
    assert change["transfer_details"] == "Same clauses as the parent"


async def test_an_entry_that_still_engages_another_cannot_be_removed(world, db):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH")
    [parent] = registry.entries_of(first)
    await publish(world, actor, entry_data("Racks Ltd", parent_id=parent["id"]))

    with pytest.raises(InvalidInput) as refused:
        await publishing.draft_removal(db, actor=actor, entry_id=parent["id"])
    await db.rollback()

    assert "Hostwerk GmbH still engages Racks Ltd" in refused.value.message
    assert await _count(db, DraftChange) == 0


async def test_an_entry_that_still_engages_another_cannot_be_replaced(world, db, engine):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH")
    [parent] = registry.entries_of(first)
    await publish(world, actor, entry_data("Racks Ltd", parent_id=parent["id"]))
    await publishing.draft_entry(db, actor=actor, raw=entry_data("Cloudhaus SE"), replaces=parent["id"])
    await world.commit()

    error = await _refused_publish(world, engine, actor, days(60))

    assert "Racks Ltd" in error.message and "being removed" in error.message


async def test_a_vendor_viewer_cannot_draft_or_publish(world, db):
    viewer = Actor.for_member(await loaded(db, await world.person(await world.vendor(), Role.VIEWER)))
    legal = await vendor_legal(world)
    await _draft(world, legal, "Hostwerk GmbH")

    with pytest.raises(Forbidden):
        await publishing.draft_entry(db, actor=viewer, raw=entry_data("Tokenwerk AG"))
    with pytest.raises(Forbidden):
        await publishing.publish(db, actor=viewer, effective_date=days(30).isoformat(), summary="",
                                 default_notice_days=30, base_url=BASE_URL, now=NOW)
    await db.rollback()

    assert await _count(db, DraftChange) == 1 and await _count(db, ListVersion) == 0


# ---------------------------------------------------------------- each client's authorisation of each change

async def test_each_client_with_an_active_agreement_gets_a_pending_authorisation_per_change(world, db):
    actor = await vendor_legal(world)
    clients = [await _client(world, name) for name in ("Acme Logistics", "Borealis Bank", "Cobalt Health")]
    no_agreement = await world.client_org("Delta Prospects")
    ended = await _client(world, "Echo Former")
    [former] = await agreements.agreements_of(db, ended)
    await agreements.end_agreement(db, actor=Actor.system("test"), org=ended, agreement_id=str(former.id),
                                   reason="Contract ended")
    await world.commit()

    version = await publish(world, actor, "Hostwerk GmbH", "Tokenwerk AG", now=NOW)

    rows = (await db.execute(select(ChangeAuthorisation))).scalars().all()
    assert len(rows) == len(clients) * len(version.changes) == 6
    assert {(r.org_id, r.entry_name) for r in rows} == {
        (org.id, name) for org in clients for name in ("Hostwerk GmbH", "Tokenwerk AG")}
    assert {r.state for r in rows} == {AuthorisationState.PENDING}
    assert {r.change_kind for r in rows} == {ChangeKind.ADDED}
    assert {r.version_id for r in rows} == {version.id}
    assert {r.notified_at for r in rows} == {NOW}
    notified = set((await db.execute(select(Notice.org_id).where(Notice.type == "subprocessor_change"))).scalars())
    assert no_agreement.id not in notified and ended.id not in notified


async def test_each_deadline_is_the_clients_own_period_but_never_after_the_effective_date(world, db):
    actor = await vendor_legal(world)
    standard = await _client(world, "Acme Logistics")
    longer = await _client(world, "Borealis Bank", notice_days=60)
    shorter = await _client(world, "Cobalt Health", notice_days=14)

    await publish(world, actor, "Hostwerk GmbH", effective=days(90), now=NOW)
    await _draft(world, actor, "Tokenwerk AG")
    second = await _publish_drafts(world, actor, days(90))

    rows = (await db.execute(select(ChangeAuthorisation))).scalars().all()
    deadline = {(r.org_id, r.entry_name): r.deadline for r in rows}
    # Version 1 takes effect long after both periods: each client has exactly its own period.
    assert deadline[(standard.id, "Hostwerk GmbH")] == NOW + dt.timedelta(days=30)
    assert deadline[(longer.id, "Hostwerk GmbH")] == NOW + dt.timedelta(days=60)
    assert deadline[(shorter.id, "Hostwerk GmbH")] == NOW + dt.timedelta(days=14)
    # Version 2, announced the same day, takes effect on the same date: the same deadlines.
    assert deadline[(longer.id, "Tokenwerk AG")] == NOW + dt.timedelta(days=60)
    assert {r.notice_days for r in rows if r.org_id == longer.id} == {60}
    assert {r.notice_days for r in rows if r.org_id == standard.id} == {30}
    assert second.notice_days == 60


async def test_every_deadline_ends_before_the_change_takes_effect(world, db):
    actor = await vendor_legal(world)
    standard = await _client(world, "Acme Logistics")
    longer = await _client(world, "Borealis Bank", notice_days=60)

    await publish(world, actor, "Hostwerk GmbH", effective=days(61), now=NOW)

    rows = {r.org_id: r for r in (await db.execute(select(ChangeAuthorisation))).scalars().all()}
    start_of_effective_day = dt.datetime.combine(days(61), dt.time(), tzinfo=dt.UTC)
    assert rows[standard.id].deadline == NOW + dt.timedelta(days=30)
    assert rows[longer.id].deadline == NOW + dt.timedelta(days=60)
    assert all(row.deadline <= start_of_effective_day for row in rows.values())


async def test_the_authorisation_option_is_copied_from_the_agreement(world, db):
    actor = await vendor_legal(world)
    general = await _client(world, "Acme Logistics")
    specific = await _client(world, "Borealis Bank", authorisation="specific")

    await publish(world, actor, "Hostwerk GmbH", now=NOW)

    rows = {r.org_id: r for r in (await db.execute(select(ChangeAuthorisation))).scalars().all()}
    assert rows[general.id].authorisation is Authorisation.GENERAL
    assert rows[specific.id].authorisation is Authorisation.SPECIFIC
    for org in (general, specific):
        active = await agreements.active_agreement(db, org)
        assert active is not None and rows[org.id].agreement_id == active.id


async def test_a_changed_entry_needs_each_clients_authorisation_again(world, db):
    actor = await vendor_legal(world)
    org = await _client(world, "Acme Logistics")
    first = await publish(world, actor, "Hostwerk GmbH", now=NOW - dt.timedelta(days=60))
    [entry] = registry.entries_of(first)
    await publishing.draft_entry(db, actor=actor, entry_id=entry["id"],
                                 raw=entry_data("Hostwerk GmbH", locations="DE, JP"))
    await world.commit()

    second = await _publish_drafts(world, actor, days(31))

    [row] = (await db.execute(select(ChangeAuthorisation)
                              .where(ChangeAuthorisation.version_id == second.id))).scalars().all()
    assert (row.org_id, row.change_kind, row.state) == (org.id, ChangeKind.CHANGED, AuthorisationState.PENDING)


# ---------------------------------------------------------------- notices (legal requirements 35, 36)

async def _change_notices(db, version: ListVersion) -> dict[object, Notice]:
    notices = (await db.execute(select(Notice).where(Notice.type == "subprocessor_change",
                                                     Notice.subject_id == str(version.id)))).scalars().all()
    by_org = {n.org_id: n for n in notices}
    assert len(by_org) == len(notices), "one notice per organisation"
    return by_org


async def test_one_notice_per_client_with_an_agreement_and_one_to_the_public(world, db):
    actor = await vendor_legal(world)
    clients = [await _client(world, name) for name in ("Acme Logistics", "Borealis Bank", "Cobalt Health")]
    await world.client_org("Delta Prospects")

    version = await publish(world, actor, "Hostwerk GmbH", now=NOW)

    notices = await _change_notices(db, version)
    assert set(notices) == {org.id for org in clients} | {None}
    for org in clients:
        assert notices[org.id].context["link"] == f"{BASE_URL}/subprocessors/versions/1/respond"
        assert notices[org.id].context["effective_date"] == version.effective_date.isoformat()
    assert notices[None].context["objection_deadline"] is None


async def test_each_clients_notice_has_its_own_objection_deadline(world, db):
    actor = await vendor_legal(world)
    standard = await _client(world, "Acme Logistics")
    longer = await _client(world, "Borealis Bank", notice_days=60)

    version = await publish(world, actor, "Hostwerk GmbH", effective=days(90), now=NOW)

    notices = await _change_notices(db, version)
    assert notices[standard.id].context["objection_deadline"] == days(30).isoformat()
    assert notices[longer.id].context["objection_deadline"] == days(60).isoformat()
    assert notices[longer.id].payload["objection_deadline"] == days(60).isoformat()


async def test_a_deadline_at_midnight_is_told_as_the_day_before(world, db):
    actor = await vendor_legal(world)
    longer = await _client(world, "Borealis Bank", notice_days=60)

    version = await publish(world, actor, "Hostwerk GmbH", effective=days(60), now=MIDNIGHT)

    notices = await _change_notices(db, version)
    assert notices[longer.id].context["objection_deadline"] == days(59).isoformat()


async def test_every_change_in_a_notice_carries_the_register_fields(world, db):
    actor = await vendor_legal(world)
    org = await _client(world, "Acme Logistics")
    abroad = entry_data("Tokenwerk Inc", locations="US", transfer_mechanism="dpf", contact_position="")

    version = await publish(world, actor, "Hostwerk GmbH", abroad, now=NOW)

    notices = await _change_notices(db, version)
    changes = {c["name"]: c for c in notices[org.id].context["changes"]}
    assert set(changes) == {"Hostwerk GmbH", "Tokenwerk Inc"}
    for change in changes.values():
        for key in ("name", "legal_entity", "address", "contact", "purpose", "processing", "locations"):
            assert change[key], f"{change['name']}: {key} is empty"
        assert "transfer_mechanism" in change
        assert change["kind"] == "added"
    assert changes["Tokenwerk Inc"]["transfer_mechanism"] == "EU-US Data Privacy Framework (the recipient is certified)"
    assert changes["Tokenwerk Inc"]["contact"] == "Dana Datenschutz, privacy@tokenwerk.example"
    assert changes["Hostwerk GmbH"]["contact"] == "Dana Datenschutz, DPO, privacy@hostwerk.example"
    assert changes["Tokenwerk Inc"]["locations"] == ["US"]
    assert notices[None].context["changes"] == notices[org.id].context["changes"]


async def test_notices_go_to_the_privacy_contact_or_else_the_admins(world, db):
    actor = await vendor_legal(world)
    with_contact = await _client(world, "Acme Logistics")
    without = await _client(world, "Borealis Bank", privacy_contact=False)

    version = await publish(world, actor, "Hostwerk GmbH", now=NOW)

    notices = await _change_notices(db, version)
    for org, expected in ((with_contact, "privacy@"), (without, "admin@")):
        deliveries = (await db.execute(select(Delivery).where(Delivery.notice_id == notices[org.id].id)))\
            .scalars().all()
        assert [(d.channel, d.email) for d in deliveries] == [(Channel.EMAIL, f"{expected}{org.slug}.example")]
        assert {d.org_id for d in deliveries} == {org.id}
