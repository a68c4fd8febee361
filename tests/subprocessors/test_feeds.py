"""The public list as data: ``/subprocessors.json`` against its schema, the Atom feed (RFC 4287), the CSV export, and
the caching every public answer shares (ETag, Last-Modified, 304, a new ETag after a publish and for another day)."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import xml.etree.ElementTree as ET
from email.utils import format_datetime, parsedate_to_datetime

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from portal.db import utcnow
from portal.subprocessors import feeds, public_cache
from portal.subprocessors.entries import FIELD_NAMES
from portal.subprocessors.feed_schema import PUBLIC_LIST_SCHEMA
from tests.subprocessors.support import entry_data, publish, vendor_legal
from tests.subprocessors.test_public_pages import three_versions

ATOM = "{http://www.w3.org/2005/Atom}"
PUBLIC_URLS = ("/subprocessors", "/subprocessors.json", "/subprocessors.atom", "/subprocessors.csv",
               "/subprocessors/versions/1", "/subprocessors/diff?from=1&to=1")


def valid(document: dict) -> dict:
    Draft202012Validator(PUBLIC_LIST_SCHEMA, format_checker=FormatChecker()).validate(document)
    return document


def parse_feed(content: bytes) -> ET.Element:
    """The feed as any Atom reader's XML parser sees it (the portal's own output, so the stdlib parser is fine)."""
    return ET.fromstring(content)  # noqa: S314


def test_the_schema_is_a_valid_draft_2020_12_schema():
    Draft202012Validator.check_schema(PUBLIC_LIST_SCHEMA)


# ---------------------------------------------------------------- JSON

async def test_the_json_document_before_anything_is_published(client):
    response = await client.get("/subprocessors.json")

    assert response.status_code == 200
    document = valid(response.json())
    assert (document["version"], document["entries"], document["history"], document["latest_version"]) == (
        None, [], [], 0)
    assert document["vendor"] == "Lumen AI"
    assert document["as_of"] == utcnow().date().isoformat()


async def test_the_json_document_holds_the_list_upcoming_changes_and_history(client, world):
    history = await three_versions(world)

    response = await client.get("/subprocessors.json")

    assert response.headers["content-type"] == "application/json"
    document = valid(response.json())
    assert (document["version"], document["sha256"], document["effective_date"], document["latest_version"]) == (
        2, history.v2.sha256, history.v2.effective_date.isoformat(), 3)
    assert document["url"] == "http://testserver/subprocessors/versions/2"
    assert [e["name"] for e in document["entries"]] == ["Alpha Hosting", "Beta Mail", "Gamma Vector"]
    beta = document["entries"][1]
    assert set(FIELD_NAMES) <= set(beta)  # every register field
    assert (beta["depth"], beta["parent_id"], beta["parent_name"]) == (1, history.ids["Alpha Hosting"],
                                                                       "Alpha Hosting")
    assert beta["countries"] == [
        {"code": "DE", "name": "Germany", "transfer_basis": "EEA"},
        {"code": "US", "name": "United States",
         "transfer_basis": "Standard contractual clauses (2021/914), module 3: processor to processor"}]
    assert beta["transfer_mechanism"] == "scc_module_3"
    assert beta["listed_since"] == 1
    assert document["entries"][2]["listed_since"] == 2
    [upcoming] = document["upcoming"]
    assert (upcoming["version"], upcoming["effective_date"]) == (3, history.v3.effective_date.isoformat())
    [change] = upcoming["changes"]
    assert (change["kind"], change["name"], change["ai_model_provider"]) == ("added", "Epsilon Models", True)
    assert change["countries"] == [{"code": "JP", "name": "Japan", "transfer_basis": "Adequacy decision: Japan"}]
    assert [v["version"] for v in document["history"]] == [3, 2, 1]
    assert document["history"][2]["sha256"] == history.v1.sha256


async def test_anyone_can_check_the_hash_from_the_json_document(client, world):
    """The README's recipe: the register fields of each entry, sorted by name, as canonical JSON."""
    await three_versions(world)
    document = (await client.get("/subprocessors.json")).json()

    entries = [{key: e[key] for key in ("id", *FIELD_NAMES)} for e in document["entries"]]
    entries.sort(key=lambda e: (e["name"].lower(), e["id"]))
    canonical = json.dumps({"version": document["version"], "effective_date": document["effective_date"],
                            "entries": entries}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    assert hashlib.sha256(canonical.encode()).hexdigest() == document["sha256"]


async def test_the_json_document_as_of_a_day(client, world):
    history = await three_versions(world)
    day = history.v1.effective_date + dt.timedelta(days=1)

    document = valid((await client.get(f"/subprocessors.json?as_of={day.isoformat()}")).json())

    assert (document["as_of"], document["version"]) == (day.isoformat(), 1)
    assert [e["name"] for e in document["entries"]] == ["Alpha Hosting", "Beta Mail", "Delta Logs"]
    assert document["upcoming"] == []  # version 2 was announced later
    before = valid((await client.get("/subprocessors.json?as_of=2001-01-01")).json())
    assert (before["version"], before["entries"]) == (None, [])


async def test_a_malformed_as_of_answers_json_400(client):
    response = await client.get("/subprocessors.json?as_of=31.12.2026")

    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("as_of must be a date written YYYY-MM-DD")
    assert (await client.get("/subprocessors.csv?as_of=soon")).status_code == 400


# ---------------------------------------------------------------- Atom

async def test_the_atom_feed_has_one_entry_per_version(client, world):
    history = await three_versions(world)

    response = await client.get("/subprocessors.atom")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = parse_feed(response.content)
    assert feed.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{required}") is not None, required
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 3
    for entry in entries:
        for required in ("id", "title", "updated", "link", "summary", "content"):
            assert entry.find(f"{ATOM}{required}") is not None, required
        assert entry.findtext(f"{ATOM}id").startswith("urn:uuid:")
    newest = entries[0]
    assert newest.findtext(f"{ATOM}title") == f"Version 3, effective {history.v3.effective_date.isoformat()}"
    assert newest.find(f"{ATOM}link").get("href") == "http://testserver/subprocessors/versions/3"
    assert dt.datetime.fromisoformat(newest.findtext(f"{ATOM}updated")) == history.v3.announced_at.replace(
        microsecond=0)
    assert "<li>New sub-processor: Epsilon Models" in newest.findtext(f"{ATOM}content")
    assert "Removal: Delta Logs" in entries[1].findtext(f"{ATOM}summary")
    assert feed.findtext(f"{ATOM}updated") == newest.findtext(f"{ATOM}updated")
    assert len({e.findtext(f"{ATOM}id") for e in entries}) == 3

    again = parse_feed((await client.get("/subprocessors.atom")).content)
    assert [e.findtext(f"{ATOM}id") for e in again.findall(f"{ATOM}entry")] == \
        [e.findtext(f"{ATOM}id") for e in entries]


async def test_the_atom_feed_before_anything_is_published(client):
    feed = parse_feed((await client.get("/subprocessors.atom")).content)

    assert feed.findall(f"{ATOM}entry") == []
    assert feed.findtext(f"{ATOM}updated")


# ---------------------------------------------------------------- CSV

async def test_the_csv_has_a_row_per_entry_in_chain_order(client, world):
    history = await three_versions(world)

    response = await client.get("/subprocessors.csv")

    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"] == \
        f'attachment; filename="subprocessors-{utcnow().date().isoformat()}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["Name"] for r in rows] == ["Alpha Hosting", "Beta Mail", "Gamma Vector"]
    beta = rows[1]
    assert (beta["Chain level"], beta["Engaged by"], beta["List version"]) == ("1", "Alpha Hosting", "2")
    assert beta["Countries"] == "Germany (DE); United States (US)"
    assert beta["Transfer mechanism"].startswith("Standard contractual clauses")
    assert beta["Entry id"] == history.ids["Beta Mail"]

    old = list(csv.DictReader(io.StringIO((await client.get(
        f"/subprocessors.csv?as_of={history.v1.effective_date.isoformat()}")).text)))
    assert [r["Name"] for r in old] == ["Alpha Hosting", "Beta Mail", "Delta Logs"]


async def test_csv_cells_cannot_run_as_formulas(client, world):
    actor = await vendor_legal(world)
    await publish(world, actor, entry_data("=HYPERLINK(\"http://evil.example\")", purpose="+1 cloud",
                                           legal_entity="@SUM(A1)", services="-2"),
                  now=utcnow() - dt.timedelta(days=45), effective=utcnow().date() - dt.timedelta(days=10))

    [row] = list(csv.DictReader(io.StringIO((await client.get("/subprocessors.csv")).text)))

    assert row["Name"] == "'=HYPERLINK(\"http://evil.example\")"
    assert (row["Purpose"], row["Legal entity"], row["Services it applies to"]) == ("'+1 cloud", "'@SUM(A1)", "'-2")


# ---------------------------------------------------------------- caching

@pytest.mark.parametrize("url", PUBLIC_URLS)
async def test_every_public_answer_is_cacheable_and_answers_304(client, world, url):
    await three_versions(world)

    first = await client.get(url)

    assert first.status_code == 200
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert first.headers["cache-control"] == "public, max-age=60"
    assert parsedate_to_datetime(modified) <= utcnow()
    again = await client.get(url, headers={"if-none-match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    weak = await client.get(url, headers={"if-none-match": f'"other", W/{etag}'})
    assert weak.status_code == 304
    since = await client.get(url, headers={"if-modified-since": modified})
    assert (since.status_code, since.content) == (304, b"")
    older = format_datetime(parsedate_to_datetime(modified) - dt.timedelta(seconds=1), usegmt=True)
    assert (await client.get(url, headers={"if-modified-since": older})).status_code == 200
    # If-None-Match decides when both are sent.
    assert (await client.get(url, headers={"if-none-match": '"other"', "if-modified-since": modified})
            ).status_code == 200


async def test_a_new_publish_changes_the_etag_and_the_content(client, world):
    actor = await vendor_legal(world)
    await publish(world, actor, "Alpha Hosting", now=utcnow() - dt.timedelta(days=45),
                  effective=utcnow().date() - dt.timedelta(days=10))
    before = {url: await client.get(url) for url in PUBLIC_URLS[:4]}

    await publish(world, actor, "Zeta Search", now=utcnow() - dt.timedelta(days=35),
                  effective=utcnow().date() - dt.timedelta(days=2))

    for url, old in before.items():
        new = await client.get(url, headers={"if-none-match": old.headers["etag"]})
        assert new.status_code == 200, url
        assert new.headers["etag"] != old.headers["etag"], url
        assert "Zeta Search" in new.text and "Zeta Search" not in old.text, url


async def test_the_etag_names_the_day_the_answer_is_for(client, world):
    history = await three_versions(world)
    days = [history.v1.effective_date, history.v1.effective_date + dt.timedelta(days=1)]

    answers = [await client.get(f"/subprocessors.json?as_of={day.isoformat()}") for day in days]

    # The same list on both days, yet each day is its own answer: today's list changes at midnight without a publish.
    assert answers[0].json()["entries"] == answers[1].json()["entries"]
    assert answers[0].headers["etag"] != answers[1].headers["etag"]
    key = {"latest": 3, "path": "/subprocessors.json", "query": ""}
    assert public_cache.answer_key(day=days[0], **key) != public_cache.answer_key(day=days[1], **key)


async def test_answers_are_rendered_once_until_the_next_publish(client, world, app):
    history = await three_versions(world)
    cache = public_cache.answers_of(app.state).cache

    first = await client.get("/subprocessors.json")
    second = await client.get("/subprocessors.json")

    assert len(cache) == 1
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    await publish(world, history.actor, "Theta Analytics")  # in this process: seen at once
    third = await client.get("/subprocessors.json")
    assert len(cache) == 2 and third.json()["latest_version"] == 4


async def test_a_cached_answer_is_given_before_the_session_layers(app, world):
    """A hit is answered in front of the CSRF-cookie, session and database layers (what makes the list cheap to
    serve), with the security headers still on."""
    await three_versions(world)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as first:
        miss = await first.get("/subprocessors")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as second:
        hit = await second.get("/subprocessors")

    assert miss.content == hit.content
    assert "portal_csrf" in miss.headers.get("set-cookie", "")  # the app ran: it gave the browser its cookie
    assert "set-cookie" not in hit.headers  # answered before that layer
    assert hit.headers["content-security-policy"] == miss.headers["content-security-policy"]


def test_the_cache_keeps_the_most_recently_used_answers():
    cache = public_cache.AnswerCache(size=3)
    answer = public_cache.Answer(b"x", "text/plain", utcnow())
    for key in "abc":
        cache.put(key, answer)
    assert cache.get("a") is answer  # now the most recently used

    cache.put("d", answer)

    assert len(cache) == 3
    assert cache.get("b") is None
    assert all(cache.get(key) is answer for key in "acd")


def test_last_modified_is_the_newest_announcement_or_the_start_of_the_day():
    now = dt.datetime(2026, 5, 10, 12, 30, 15, 500, tzinfo=dt.UTC)
    announced = dt.datetime(2026, 5, 1, 9, 0, 1, 250, tzinfo=dt.UTC)

    assert feeds.modified_at(announced, now.date(), now) == dt.datetime(2026, 5, 10, tzinfo=dt.UTC)
    assert feeds.modified_at(announced, dt.date(2026, 4, 1), now) == announced.replace(microsecond=0)
    assert feeds.modified_at(None, dt.date(2026, 4, 1), now) == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    assert feeds.modified_at(announced, dt.date(2027, 1, 1), now) == now.replace(microsecond=0)  # never ahead
