"""The audit log page and its CSV and JSON exports: who sees what, filters, pages and safe files."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import html
import io
import json
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import delete

from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from tests.audit.conftest import record_events

HASHED_FIELDS = ("seq", "id", "occurred_at", "org_id", "actor_id", "actor", "tag", "subject_type", "subject_id",
                 "data", "ip")
COLUMNS = [*HASHED_FIELDS, "prev_hash", "hash"]


@dataclass
class Tenants:
    vendor: Organisation
    acme: Organisation
    borealis: Organisation
    owner: Membership
    acme_admin: Membership
    acme_member: Membership
    borealis_admin: Membership


@pytest.fixture
async def tenants(world) -> Tenants:
    vendor = await world.vendor()
    owner = await world.person(vendor, Role.OWNER, email="owner@lumen.example")
    acme = await world.client_org("Acme Logistics")
    borealis = await world.client_org("Borealis Bank")
    return Tenants(
        vendor=vendor, acme=acme, borealis=borealis, owner=owner,
        acme_admin=await world.person(acme, Role.ADMIN, email="admin@acme.example"),
        acme_member=await world.person(acme, Role.MEMBER, email="member@acme.example"),
        borealis_admin=await world.person(borealis, Role.ADMIN, email="admin@borealis.example"),
    )


def rows_in(page: str) -> int:
    return page.count("<time datetime=")


def recomputed_hash(event: dict) -> str:
    """The chain rule, written out independently of the portal's code."""
    body = json.dumps({name: event[name] for name in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256((event["prev_hash"] + body).encode()).hexdigest()


def csv_events(text: str) -> list[dict]:
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == COLUMNS
    events = []
    for row in reader:
        events.append({**row, "seq": int(row["seq"]), "data": json.loads(row["data"]),
                       "org_id": row["org_id"] or None, "actor_id": row["actor_id"] or None})
    return events


# ---------------------------------------------------------------- who sees what

async def test_vendor_staff_see_every_organisation(tenants, login_as):
    c = await login_as(tenants.owner)
    response = await c.get("/audit")
    assert response.status_code == 200
    for text in ("admin@acme.example", "admin@borealis.example", "owner@lumen.example", "Acme Logistics",
                 "Borealis Bank", "membership:created", "organisation:created"):
        assert text in response.text
    assert rows_in(response.text) == 7


async def test_vendor_staff_filter_by_organisation(tenants, login_as):
    c = await login_as(tenants.owner)
    response = await c.get("/audit", params={"org": str(tenants.borealis.id)})
    assert response.status_code == 200
    assert "admin@borealis.example" in response.text
    assert "admin@acme.example" not in response.text
    assert rows_in(response.text) == 2  # the organisation and its admin
    assert f'<option value="{tenants.borealis.id}" selected>' in response.text


async def test_a_viewer_at_the_vendor_may_read_the_log(tenants, world, login_as):
    viewer = await world.person(tenants.vendor, Role.VIEWER)
    c = await login_as(viewer)
    assert (await c.get("/audit")).status_code == 200


async def test_client_admin_sees_only_their_organisation(tenants, login_as):
    c = await login_as(tenants.acme_admin)
    response = await c.get("/audit")
    assert response.status_code == 200
    assert "admin@acme.example" in response.text
    assert "member@acme.example" in response.text
    assert "borealis" not in response.text.lower()
    assert "owner@lumen.example" not in response.text
    assert rows_in(response.text) == 3  # the organisation, its admin and its member
    assert 'name="org"' not in response.text  # no organisation filter for clients


async def test_client_admin_cannot_ask_for_another_organisation(tenants, login_as):
    c = await login_as(tenants.acme_admin)
    other = {"org": str(tenants.borealis.id)}
    for url in ("/audit", "/audit/export.csv", "/audit/export.json"):
        response = await c.get(url, params=other)
        assert response.status_code == 404, url
        assert "borealis" not in response.text.lower()
    own = await c.get("/audit", params={"org": str(tenants.acme.id)})
    assert own.status_code == 200
    assert rows_in(own.text) == 3


async def test_client_exports_hold_only_their_organisation(tenants, login_as):
    c = await login_as(tenants.acme_admin)
    as_csv = await c.get("/audit/export.csv")
    as_json = await c.get("/audit/export.json")
    assert as_csv.status_code == as_json.status_code == 200
    for body in (as_csv.text, as_json.text):
        assert "borealis" not in body.lower()
        assert "owner@lumen.example" not in body
    events = json.loads(as_json.text)["events"]
    assert len(events) == len(csv_events(as_csv.text)) == 3
    assert {e["org_id"] for e in events} == {str(tenants.acme.id)}
    assert {e["org_id"] for e in csv_events(as_csv.text)} == {str(tenants.acme.id)}


async def test_members_without_the_permission_get_403(tenants, login_as):
    c = await login_as(tenants.acme_member)
    assert (await c.get("/audit")).status_code == 403
    assert (await c.get("/audit/export.csv")).status_code == 403
    response = await c.get("/audit/export.json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    home = await c.get("/audit", params={"tag": "membership:"})
    assert "admin@acme.example" not in home.text


async def test_anonymous_visitors_are_sent_to_log_in(tenants, client):
    response = await client.get("/audit")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
    exported = await client.get("/audit/export.json")
    assert exported.status_code == 401
    assert "events" not in exported.text
    assert (await client.get("/audit/export.csv")).status_code in {303, 401}


# ---------------------------------------------------------------- filters and pages

async def test_filter_by_exact_tag_and_prefix(tenants, login_as):
    c = await login_as(tenants.owner)
    exact = await c.get("/audit", params={"tag": "organisation:created"})
    assert rows_in(exact.text) == 3
    assert "admin@acme.example" not in exact.text
    prefix = await c.get("/audit", params={"tag": "membership:"})
    assert rows_in(prefix.text) == 4
    assert "organisation:created</code>" not in prefix.text
    partial = await c.get("/audit", params={"tag": "membership"})  # neither exact nor a prefix
    assert rows_in(partial.text) == 0
    assert "No events match these filters" in partial.text


async def test_filter_by_actor(tenants, world, db, login_as):
    await record_events(db, tenants.acme, 2, actor="user:auditor@acme.example", tag="dpa:viewed")
    c = await login_as(tenants.owner)
    response = await c.get("/audit", params={"actor": "AUDITOR@acme"})
    assert rows_in(response.text) == 2
    assert "dpa:viewed" in response.text
    none = await c.get("/audit", params={"actor": "%"})  # LIKE wildcards are taken literally
    assert rows_in(none.text) == 0


async def test_filter_by_dates(tenants, login_as):
    c = await login_as(tenants.owner)
    today = dt.datetime.now(dt.UTC).date()
    day = dt.timedelta(days=1)
    assert rows_in((await c.get("/audit", params={"from": str(today), "to": str(today)})).text) == 7
    assert rows_in((await c.get("/audit", params={"from": str(today + day)})).text) == 0
    assert rows_in((await c.get("/audit", params={"to": str(today - day)})).text) == 0


async def test_filters_combine_and_carry_into_exports_and_pages(tenants, login_as):
    c = await login_as(tenants.owner)
    params = {"tag": "membership:", "org": str(tenants.acme.id)}
    page = await c.get("/audit", params=params)
    assert rows_in(page.text) == 2
    link = html.unescape(re.search(r'href="(/audit/export\.json\?[^"]+)"', page.text).group(1))
    events = json.loads((await c.get(link)).text)["events"]
    assert [e["data"]["email"] for e in events] == ["admin@acme.example", "member@acme.example"]
    assert json.loads((await c.get(link)).text)["filters"] == params


async def test_bad_filters_are_explained_and_kept(tenants, login_as):
    c = await login_as(tenants.owner)
    response = await c.get("/audit", params={"from": "31/01/2026", "actor": "alice"})
    assert response.status_code == 400
    assert "must be a date like 2026-01-31" in response.text
    assert 'value="31/01/2026"' in response.text
    assert 'value="alice"' in response.text
    assert rows_in(response.text) == 0
    backwards = await c.get("/audit", params={"from": "2026-02-01", "to": "2026-01-01"})
    assert backwards.status_code == 400
    assert "after the" in backwards.text
    bad_org = await c.get("/audit", params={"org": "not-an-id"})
    assert bad_org.status_code == 400
    export = await c.get("/audit/export.json", params={"to": "yesterday"})
    assert export.status_code == 400
    assert export.json()["error"]["fields"] == {"to": "Not a date."}


async def test_pages_run_newest_first_with_an_older_link(tenants, db, login_as):
    await record_events(db, tenants.acme, 113, tag="test:bulk")
    c = await login_as(tenants.owner)
    url, seen, pages = "/audit?tag=test%3Abulk", [], 0
    while url:
        response = await c.get(url)
        assert response.status_code == 200
        seqs = [int(s) for s in re.findall(r"<tr>\s*<td>(\d+)</td>", response.text)]
        assert seqs == sorted(seqs, reverse=True)
        seen += seqs
        pages += 1
        older = re.search(r'href="(/audit\?[^"]*before=\d+[^"]*)" rel="next"', response.text)
        url = html.unescape(older.group(1)) if older else None
        if url:
            assert "tag=test%3Abulk" in url
    assert pages == 3
    assert len(seen) == len(set(seen)) == 113
    assert seen == sorted(seen, reverse=True)


async def test_bad_page_cursor_is_refused(tenants, login_as):
    c = await login_as(tenants.owner)
    assert (await c.get("/audit", params={"before": "-1"})).status_code == 400
    assert (await c.get("/audit", params={"before": "²"})).status_code == 400


async def test_empty_log_explains_what_appears_here(tenants, db, login_as):
    c = await login_as(tenants.owner)
    await db.execute(delete(AuditEvent))
    await db.commit()
    response = await c.get("/audit")
    assert response.status_code == 200
    assert "No events yet" in response.text
    assert "Every change made in the portal appears here" in response.text


# ---------------------------------------------------------------- exports

async def test_full_export_can_be_verified_offline(tenants, login_as):
    c = await login_as(tenants.owner)
    as_json = await c.get("/audit/export.json")
    as_csv = await c.get("/audit/export.csv")
    assert as_json.headers["content-type"] == "application/json"
    assert as_csv.headers["content-type"] == "text/csv; charset=utf-8"
    for response, extension in ((as_json, "json"), (as_csv, "csv")):
        assert response.status_code == 200
        assert re.fullmatch(rf'attachment; filename="audit-events-\d{{8}}T\d{{6}}Z\.{extension}"',
                            response.headers["content-disposition"])
        assert response.headers["cache-control"] == "no-store"
    document = json.loads(as_json.text)
    assert "sha256" in document["hash_rule"]
    for events in (document["events"], csv_events(as_csv.text)):
        assert [e["seq"] for e in events] == list(range(1, 8))
        previous = "0" * 64
        for event in events:
            assert event["prev_hash"] == previous
            assert recomputed_hash(event) == event["hash"]
            previous = event["hash"]


async def test_csv_export_neutralises_spreadsheet_formulas(tenants, db, login_as):
    dangerous = ['=HYPERLINK("http://evil.example","click")', "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1+1"]
    for label in dangerous:
        await record_events(db, tenants.acme, 1, actor=label, tag="test:formula", note="=cmd|' /C calc'!A0")
    c = await login_as(tenants.owner)
    rows = list(csv.reader(io.StringIO((await c.get("/audit/export.csv", params={"tag": "test:formula"})).text)))
    actors = [row[COLUMNS.index("actor")] for row in rows[1:]]
    assert actors == ["'" + label for label in dangerous]
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    events = json.loads((await c.get("/audit/export.json", params={"tag": "test:formula"})).text)["events"]
    assert [e["actor"] for e in events] == dangerous  # JSON keeps the values as they are
    assert events[0]["data"]["note"] == "=cmd|' /C calc'!A0"


async def test_export_of_nothing_is_still_a_valid_file(tenants, login_as):
    c = await login_as(tenants.owner)
    as_json = await c.get("/audit/export.json", params={"tag": "nothing:here"})
    assert json.loads(as_json.text)["events"] == []
    as_csv = await c.get("/audit/export.csv", params={"tag": "nothing:here"})
    assert as_csv.text == ",".join(COLUMNS) + "\r\n"


async def test_export_reads_in_batches_and_misses_nothing(tenants, db, login_as, monkeypatch):
    monkeypatch.setattr("portal.audit.queries.EXPORT_BATCH", 4)
    await record_events(db, tenants.borealis, 17, tag="test:bulk")
    c = await login_as(tenants.owner)
    events = json.loads((await c.get("/audit/export.json")).text)["events"]
    assert [e["seq"] for e in events] == list(range(1, 25))
    rows = csv_events((await c.get("/audit/export.csv", params={"org": str(tenants.borealis.id)})).text)
    assert len(rows) == 19
    assert rows == sorted(rows, key=lambda e: e["seq"])
