"""The vendor's registry pages: adding (every field), editing and publishing; field-level errors that save nothing;
the flow-down contract and the notice period refusing a publication; replace and remove drafts with their badges
and their changes on the publish page; who may read and who may change."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from portal.db import make_sessionmaker, utcnow
from portal.subprocessors.models import DraftChange, DraftKind, ListVersion
from portal.subprocessors.publishing import first_full_day
from tests.conftest import post_form
from tests.subprocessors.support import agreement, entry_data, publish, vendor_legal


@pytest.fixture
async def legal(world, login_as):
    return await login_as(await world.person(await world.vendor(), Role.LEGAL, email="lena@lumen.example"))


async def count(engine: AsyncEngine, model: Any) -> int:
    async with make_sessionmaker(engine)() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def drafts(engine: AsyncEngine) -> list[DraftChange]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.execute(select(DraftChange).order_by(DraftChange.created_at))).scalars())


async def versions(engine: AsyncEngine) -> list[ListVersion]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.execute(select(ListVersion).order_by(ListVersion.number))).scalars())


def entry_row(page: str, entry_id: Any) -> str:
    match = re.search(rf'<tr id="entry-{entry_id}">(.*?)</tr>', page, re.S)
    assert match, f"entry {entry_id} is not on the registry page"
    return match.group(1)


def cells(row: str) -> list[str]:
    """The text of each cell of a table row."""
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]


def field_message(page: str, name: str) -> str:
    """The message shown right below the field ``name``."""
    match = re.search(rf'<p class="flash flash-error" id="{name}-error" role="alert">(.*?)</p>', page, re.S)
    assert match, f"no message beside {name}"
    return html.unescape(match.group(1))


def default_effective_date(page: str) -> str:
    match = re.search(r'name="effective_date" value="(\d{4}-\d\d-\d\d)"', page)
    assert match, "the publish form offers no effective date"
    return match.group(1)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


async def test_legal_adds_an_entry_with_every_field_edits_it_and_publishes(legal, engine):
    parent = await post_form(legal, "/registry/new", entry_data("Cloudhaus AG"))
    assert parent.status_code == 303 and parent.headers["location"] == "/registry"
    [parent_draft] = await drafts(engine)

    form = await legal.get("/registry/new")
    assert form.status_code == 200
    assert f'<option value="{parent_draft.entry_id}">Cloudhaus AG</option>' in form.text
    assert '<option value="scc_module_3">' in form.text and 'name="ai_model_provider"' in form.text
    every_field = entry_data("Vectorly Inc.", contact_position="Head of privacy", locations="us, DE",
                             transfer_mechanism="scc_module_3", transfer_details="Clauses of 2024-05-02; TIA done",
                             parent_id=str(parent_draft.entry_id), ai_model_provider="on",
                             services="Assistant, Search", data_categories="Prompts\nOutputs")
    added = await post_form(legal, "/registry/new", every_field)
    assert added.status_code == 303
    child = next(d for d in await drafts(engine) if d.entry_id != parent_draft.entry_id)
    assert child.kind is DraftKind.ADD

    registry_page = (await legal.get("/registry")).text
    row = entry_row(registry_page, child.entry_id)
    assert '<span class="badge">new</span>' in row
    assert "Cloudhaus AG" in row and "Standard contractual clauses (2021/914), module 3" in row
    assert "United States (US), Germany (DE)" in row and "Yes" in row
    assert "Publish 2 drafted changes" in registry_page

    edit_page = await legal.get(f"/registry/entries/{child.entry_id}/edit")
    assert edit_page.status_code == 200 and 'value="Head of privacy"' in edit_page.text
    edited = await post_form(legal, f"/registry/entries/{child.entry_id}/edit",
                             {**every_field, "purpose": "Language model inference for the assistant"})
    assert edited.status_code == 303
    assert "Language model inference" in entry_row((await legal.get("/registry")).text, child.entry_id)

    plan = await legal.get("/registry/publish")
    assert plan.status_code == 200
    assert plan.text.count("New sub-processor") == 2
    effective = default_effective_date(plan.text)
    assert effective == first_full_day(utcnow() + dt.timedelta(days=30)).isoformat()  # 30 whole days' notice
    published = await post_form(legal, "/registry/publish", {"effective_date": effective, "summary": "Two new"})
    assert published.status_code == 303 and published.headers["location"] == "/registry"
    assert "Version 1 is published" in (await legal.get("/registry")).text

    [version] = await versions(engine)
    assert await drafts(engine) == []
    assert version.effective_date.isoformat() == effective and version.summary == "Two new"
    entry = next(e for e in version.document["entries"] if e["name"] == "Vectorly Inc.")
    assert entry == {
        "id": str(child.entry_id), "name": "Vectorly Inc.", "legal_entity": "Vectorly Inc. (legal entity)",
        "address": "Hauptstr. 1, 10115 Berlin, Germany", "contact_name": "Dana Datenschutz",
        "contact_position": "Head of privacy", "contact_email": "privacy@vectorly.example",
        "purpose": "Language model inference for the assistant",
        "processing": every_field["processing"], "data_categories": ["Prompts", "Outputs"],
        "locations": ["US", "DE"], "transfer_mechanism": "scc_module_3",
        "transfer_details": "Clauses of 2024-05-02; TIA done", "parent_id": str(parent_draft.entry_id),
        "ai_model_provider": True, "flow_down_reference": "DPA with Vectorly Inc. 2025-01",
        "flow_down_date": "2025-01-15", "services": "Assistant, Search",
    }
    history = (await legal.get("/registry")).text
    assert '<a href="/subprocessors/versions/1">Version 1</a>' in history and effective in history


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("name", "", "Name is required."),
    ("locations", "DE, XX", "Not an ISO 3166 country code: XX"),
    ("locations", "US", "US is outside the EEA without an adequacy decision"),
    ("contact_email", "privacy-at-example", "Enter an email address such as privacy@example.com."),
])
async def test_field_errors_are_shown_beside_the_field_and_save_nothing(legal, engine, field, typed, message):
    await post_form(legal, "/registry/new", entry_data("Cloudhaus AG"))
    [existing] = await drafts(engine)
    drafts_before, audit_before = await count(engine, DraftChange), await count(engine, AuditEvent)
    data = {**entry_data("Vectorly Inc."), field: typed}

    for url in ("/registry/new", f"/registry/entries/{existing.entry_id}/edit"):
        refused = await post_form(legal, url, data)

        assert refused.status_code == 400
        shown = field_message(refused.text, "transfer_mechanism" if typed == "US" else field)
        assert message in shown
        assert f'value="{html.escape(typed)}"' in refused.text or typed == ""  # kept as typed
        assert 'value="privacy@vectorly.example"' in refused.text or field == "contact_email"
        assert await count(engine, DraftChange) == drafts_before
        assert await count(engine, AuditEvent) == audit_before
    [unchanged] = await drafts(engine)
    assert unchanged.data["name"] == "Cloudhaus AG"


async def test_publishing_without_a_flow_down_contract_is_refused(legal, engine):
    await post_form(legal, "/registry/new", entry_data("Cloudhaus AG", flow_down_reference="", flow_down_date=""))
    [draft] = await drafts(engine)
    audit_before = await count(engine, AuditEvent)

    plan = await legal.get("/registry/publish")
    assert "Record the flow-down contract before publishing" in plan.text
    assert f'href="/registry/entries/{draft.entry_id}/edit">Fix it</a>' in plan.text
    refused = await post_form(legal, "/registry/publish",
                              {"effective_date": (today() + dt.timedelta(days=90)).isoformat(), "summary": ""})

    assert refused.status_code == 400
    assert "Cloudhaus AG: Record the flow-down contract before publishing (GDPR Art. 28(4))." in \
        html.unescape(refused.text)
    assert await versions(engine) == []
    assert await count(engine, AuditEvent) == audit_before
    assert len(await drafts(engine)) == 1


async def test_an_effective_date_inside_the_longest_notice_period_is_refused(legal, world, engine):
    await agreement(world, await world.client_org("Acme Logistics"), days=60)
    await agreement(world, await world.client_org("Beta Bank"))  # the default 30 days
    await post_form(legal, "/registry/new", entry_data("Cloudhaus AG"))

    plan = await legal.get("/registry/publish")
    earliest = first_full_day(utcnow() + dt.timedelta(days=60))
    assert default_effective_date(plan.text) == earliest.isoformat()
    assert "60 days" in plan.text and "2 clients with an active agreement" in plan.text
    for too_early in (today() + dt.timedelta(days=45), today() - dt.timedelta(days=1)):
        refused = await post_form(legal, "/registry/publish", {"effective_date": too_early.isoformat(),
                                                               "summary": "Too soon"})
        assert refused.status_code == 400
        assert field_message(refused.text, "effective_date") == (
            f"The effective date must be {earliest.isoformat()} or later: the longest notice period of a client "
            "agreement is 60 days, counted from this announcement.")
        assert f'value="{too_early.isoformat()}"' in refused.text and "Too soon" in refused.text
    not_a_date = await post_form(legal, "/registry/publish", {"effective_date": "next month", "summary": ""})
    assert not_a_date.status_code == 400
    assert field_message(not_a_date.text, "effective_date") == "Enter a date as YYYY-MM-DD."
    assert await versions(engine) == []

    accepted = await post_form(legal, "/registry/publish", {"effective_date": earliest.isoformat(), "summary": ""})
    assert accepted.status_code == 303
    [version] = await versions(engine)
    assert version.notice_days == 60 and version.effective_date == earliest


async def test_replace_and_remove_show_their_badges_and_their_changes(legal, world, engine):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Cloudhaus AG", "Mailbird Ltd")
    ids = {e["name"]: e["id"] for e in version.document["entries"]}
    cloudhaus, mailbird = ids["Cloudhaus AG"], ids["Mailbird Ltd"]

    assert "Replace Cloudhaus AG" in (await legal.get("/registry")).text
    replace_form = await legal.get(f"/registry/entries/{cloudhaus}/replace")
    assert replace_form.status_code == 200 and "Replace Cloudhaus AG" in replace_form.text
    replaced = await post_form(legal, f"/registry/entries/{cloudhaus}/replace", entry_data("Nordhost AS",
                                                                                           locations="NO"))
    assert replaced.status_code == 303
    removed = await post_form(legal, f"/registry/entries/{mailbird}/remove")
    assert removed.status_code == 303

    page = (await legal.get("/registry")).text
    new_id = next(d.entry_id for d in await drafts(engine) if d.kind is DraftKind.REPLACE)
    assert '<span class="badge">replaced by Nordhost AS</span>' in entry_row(page, cloudhaus)
    assert '<span class="badge">replacement</span>' in entry_row(page, new_id)
    assert "replaces Cloudhaus AG" in entry_row(page, new_id)
    assert '<span class="badge">to be removed</span>' in entry_row(page, mailbird)
    assert "Replace Cloudhaus AG" not in page and "Remove Mailbird Ltd" not in page  # already drafted
    assert "Publish 2 drafted changes" in page

    plan = (await legal.get("/registry/publish")).text
    changes = [cells(row) for row in re.findall(r'<tr id="change-[^"]+">(.*?)</tr>', plan, re.S)]
    assert [(kind, name, replaces) for kind, name, _purpose, _where, _tool, replaces, _fields in changes] == [
        ("Removal", "Mailbird Ltd", "—"), ("Replacement", "Nordhost AS", "Cloudhaus AG")]
    assert changes[1][3] == "NO"

    discarded = await post_form(legal, f"/registry/entries/{mailbird}/discard")
    assert discarded.status_code == 303
    assert "badge" not in entry_row((await legal.get("/registry")).text, mailbird)
    assert [d.kind for d in await drafts(engine)] == [DraftKind.REPLACE]


async def test_removing_an_entry_that_still_engages_another_is_refused(legal, world, engine):
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Cloudhaus AG")
    parent = first.document["entries"][0]["id"]
    await publish(world, actor, entry_data("Backupco GmbH", parent_id=parent))
    audit_before = await count(engine, AuditEvent)

    refused = await post_form(legal, f"/registry/entries/{parent}/remove")

    assert refused.status_code == 400
    assert "Cloudhaus AG still engages Backupco GmbH" in html.unescape(refused.text)
    assert await drafts(engine) == [] and await count(engine, AuditEvent) == audit_before


async def test_a_viewer_reads_the_registry_but_changes_nothing(world, login_as, engine):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Cloudhaus AG")
    entry_id = version.document["entries"][0]["id"]
    await post_form(await login_as(await world.person(await world.vendor(), Role.LEGAL)), "/registry/new",
                    entry_data("Mailbird Ltd"))
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    audit_before = await count(engine, AuditEvent)

    page = await viewer.get("/registry")
    assert page.status_code == 200 and "Cloudhaus AG" in page.text and "Read-only" in page.text
    assert "/registry/new" not in page.text and "Discard draft" not in page.text
    plan = await viewer.get("/registry/publish")
    assert plan.status_code == 200 and "Read-only" in plan.text and 'action="/registry/publish"' not in plan.text
    for url in ("/registry/new", f"/registry/entries/{entry_id}/edit", f"/registry/entries/{entry_id}/replace"):
        assert (await viewer.get(url)).status_code == 403, url
    for url, data in (("/registry/new", entry_data("Vectorly Inc.")),
                      (f"/registry/entries/{entry_id}/edit", entry_data("Cloudhaus AG", purpose="Other")),
                      (f"/registry/entries/{entry_id}/replace", entry_data("Vectorly Inc.")),
                      (f"/registry/entries/{entry_id}/remove", {}),
                      (f"/registry/entries/{entry_id}/discard", {}),
                      ("/registry/publish", {"effective_date": "2999-01-01", "summary": ""})):
        assert (await post_form(viewer, url, data)).status_code == 403, url
    assert await count(engine, AuditEvent) == audit_before
    assert len(await drafts(engine)) == 1 and len(await versions(engine)) == 1


async def test_client_members_do_not_find_the_registry_pages(world, login_as, engine):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Cloudhaus AG")
    entry_id = version.document["entries"][0]["id"]
    admin = await login_as(await world.person(await world.client_org("Acme Logistics"), Role.ADMIN))

    for url in ("/registry", "/registry/new", "/registry/publish", "/registry/objections",
                f"/registry/entries/{entry_id}/edit", f"/registry/entries/{entry_id}/replace"):
        response = await admin.get(url)
        assert response.status_code == 404, url
        assert "Cloudhaus AG" not in response.text
    for url in ("/registry/new", f"/registry/entries/{entry_id}/remove", "/registry/publish"):
        assert (await post_form(admin, url, entry_data("Vectorly Inc."))).status_code == 404, url
    assert await drafts(engine) == []


async def test_an_unknown_entry_answers_404(legal):
    for url in ("/registry/entries/not-an-id/edit", "/registry/entries/00000000-0000-0000-0000-000000000000/replace"):
        assert (await legal.get(url)).status_code == 404
    assert (await post_form(legal, "/registry/entries/00000000-0000-0000-0000-000000000000/remove")).status_code \
        == 404


async def test_editing_a_published_entry_drafts_a_change_until_it_matches_again(legal, world, engine):
    version = await publish(world, await vendor_legal(world), "Cloudhaus AG")
    published = version.document["entries"][0]
    url = f"/registry/entries/{published['id']}/edit"

    changed = await post_form(legal, url, entry_data("Cloudhaus AG", locations="DE, CH"))
    assert changed.status_code == 303
    assert '<span class="badge">changed</span>' in entry_row((await legal.get("/registry")).text, published["id"])
    plan = (await legal.get("/registry/publish")).text
    [change] = [cells(row) for row in re.findall(r'<tr id="change-[^"]+">(.*?)</tr>', plan, re.S)]
    assert change[0] == "Change" and change[-1] == "Locations (ISO 3166 country codes)"

    back = await post_form(legal, url, entry_data("Cloudhaus AG"))
    assert back.status_code == 303
    page = (await legal.get("/registry")).text
    assert "Cloudhaus AG is as published again" in page
    assert "badge" not in entry_row(page, published["id"]) and "drafted change" not in page
    assert await drafts(engine) == []
