"""The public AI commitments (no login, nothing client-specific): the version in force today or on any day in plain
words with the whole history, a page per version with its changes as a diff, ``/ai-commitments.json`` against its
schema with hashes anyone can recompute, ETag caching, and the answers before anything is published."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from portal.accounts.roles import Role
from portal.ai_commitments import ledger, plain
from portal.ai_commitments.feed_schema import PUBLIC_COMMITMENTS_SCHEMA
from portal.ai_commitments.models import CommitmentVersion
from portal.db import utcnow
from tests.ai_commitments.support import PROVIDER, SYSTEM, changed, commitments, register_provider

SEP = plain.SEPARATOR
URLS = ("/ai-commitments", "/ai-commitments.json", "/ai-commitments/versions/1")


@dataclass
class Ledger:
    """v1 took effect 30 days ago; v2 (telemetry kept 14 days instead of 30) 5 days ago."""

    v1: CommitmentVersion
    v2: CommitmentVersion


async def publish(world: Any, raw: dict[str, Any], *, effective: dt.date, reason: str) -> CommitmentVersion:
    draft = await ledger.save_draft(world.session, actor=SYSTEM, raw=raw)
    version = await ledger.publish(world.session, actor=SYSTEM, draft_id=str(draft.id),
                                   effective_date=effective.isoformat(), reason=reason,
                                   now=dt.datetime.combine(effective, dt.time(9), tzinfo=dt.UTC))
    await world.commit()
    return version


async def two_versions(world: Any) -> Ledger:
    await register_provider(world)
    today = utcnow().date()
    v1 = await publish(world, commitments(), effective=today - dt.timedelta(days=30),
                       reason="Our first published commitments")
    v2 = await publish(world, changed(commitments(), "telemetry", vendor_retention_days=14),
                       effective=today - dt.timedelta(days=5), reason="Telemetry kept 14 days instead of 30")
    return Ledger(v1, v2)


def text_of(page: str) -> str:
    """The page's visible text, whitespace collapsed (and none left before punctuation)."""
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return re.sub(r" ([,.:;)])", r"\1", text)


def valid(document: dict[str, Any]) -> dict[str, Any]:
    Draft202012Validator(PUBLIC_COMMITMENTS_SCHEMA, format_checker=FormatChecker()).validate(document)
    return document


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(PUBLIC_COMMITMENTS_SCHEMA)


# ---------------------------------------------------------------- nothing published

async def test_before_anything_is_published_the_page_and_json_say_so(client):
    page = await client.get("/ai-commitments")
    document = await client.get("/ai-commitments.json")

    assert page.status_code == 200
    assert "No AI commitments have been published yet" in text_of(page.text)
    assert valid(document.json())["in_force"] is None
    assert (document.json()["history"], document.json()["latest_version"]) == ([], 0)
    missing = await client.get("/ai-commitments/versions/1")
    assert missing.status_code == 404
    assert "None has been published yet" in text_of(missing.text)


# ---------------------------------------------------------------- the page

async def test_the_page_shows_the_version_in_force_in_plain_words_and_the_history(client, world):
    ledger_ = await two_versions(world)

    response = await client.get("/ai-commitments")

    assert response.status_code == 200
    text = text_of(response.text)
    assert f"In force today ({utcnow().date().isoformat()}): version 2, effective " \
           f"{ledger_.v2.effective_date.isoformat()}" in text
    telemetry = text.split("Telemetry and metadata")[1].split("AI features and the AI Act")[0]
    assert "How long we keep it 14 days" in telemetry
    prompts = text.split("Prompts and inputs")[1].split("Model outputs")[0]
    assert "Used to train models None: not used to train or improve any model" in prompts
    assert f"{PROVIDER}: Zero data retention (the provider keeps no copy); abuse-monitoring logs: none kept" in prompts
    assert "Where it is processed Germany (DE), France (FR)" in prompts
    assert "What the client controls Retention setting, training opt-in, admin audit log" in prompts
    assert "Human review Only at the client's written request for support" in prompts
    features = text.split("AI features and the AI Act")[1].split("History")[0]
    assert "Document assistant" in features
    assert "Telling people they deal with an AI (Art. 50(1)) A label 'AI assistant' on every answer" in features
    assert "Marking generated content (Art. 50(2)) C2PA metadata on generated files" in features
    assert "High-risk AI system No" in features
    history = response.text.split('id="history"')[1]
    assert history.index('id="v2"') < history.index('id="v1"')  # newest first
    for version in (ledger_.v1, ledger_.v2):
        assert version.sha256 in history and version.previous_sha256 in history
        assert version.reason in history
        assert f'href="/ai-commitments/versions/{version.number}"' in history
    assert ledger.GENESIS in history
    assert re.search(r'id="v2">.*?In force.*?No', history, re.S)
    assert re.search(r'id="v1">.*?Superseded', history, re.S)


async def test_as_of_shows_the_version_in_force_that_day(client, world):
    ledger_ = await two_versions(world)
    before_v2 = ledger_.v2.effective_date - dt.timedelta(days=1)

    response = await client.get(f"/ai-commitments?as_of={before_v2.isoformat()}")

    text = text_of(response.text)
    assert f"In force on {before_v2.isoformat()}: version 1" in text
    assert "How long we keep it 30 days" in text.split("Telemetry and metadata")[1]
    assert re.search(r'id="v2">.*?Not yet in effect', response.text, re.S)
    assert 'href="/ai-commitments.json?as_of=' + before_v2.isoformat() + '"' in response.text
    earlier = await client.get(f"/ai-commitments?as_of={(ledger_.v1.effective_date - dt.timedelta(days=1))}")
    assert f"the first version took effect on {ledger_.v1.effective_date.isoformat()}" in text_of(earlier.text)
    assert "What happens to each kind of client data" not in earlier.text


async def test_the_page_is_the_same_for_a_logged_in_client(client, world, login_as):
    await two_versions(world)
    member = await login_as(await world.person(await world.client_org("Acme Logistics"), Role.ADMIN))

    anonymous, logged_in = await client.get("/ai-commitments"), await member.get("/ai-commitments")

    assert logged_in.status_code == 200
    assert logged_in.content == anonymous.content
    assert "Acme Logistics" not in logged_in.text and "csrf_token" not in logged_in.text


# ---------------------------------------------------------------- a version and its diff

async def test_a_version_page_shows_its_changes_against_the_previous_one(client, world):
    ledger_ = await two_versions(world)
    v3 = await publish(world, changed(changed(commitments(), "telemetry", vendor_retention_days=14), "prompts",
                                      providers=[{"name": PROVIDER, "retention_days": 30, "abuse_monitoring_days": 30,
                                                  "zero_data_retention": False}]),
                       effective=utcnow().date(), reason="Prompts now kept by the provider for abuse monitoring")

    second = await client.get("/ai-commitments/versions/2")
    third = await client.get("/ai-commitments/versions/3")
    first = await client.get("/ai-commitments/versions/1")

    assert second.status_code == 200
    assert re.search("Telemetry and metadata" + SEP + r"Kept at the vendor</th>\s*<td><del>30 days</del></td>\s*"
                     r"<td><ins>14 days</ins></td>", second.text)
    text = text_of(second.text)
    assert "1 field(s) differ from version 1" in text
    assert ledger_.v2.reason in text and ledger_.v2.sha256 in text and ledger_.v1.sha256 in text
    assert "Status today Superseded" in text and "Expanding No" in text
    rows = dict(re.findall(r'<th scope="row">([^<]+)</th><td><del>([^<]*)</del></td><td><ins>[^<]*</ins>',
                           html.unescape(third.text)))
    at = f"Prompts and inputs{SEP}Model provider {PROVIDER}{SEP}"
    assert rows == {at + "Abuse-monitoring logs": "None kept", at + "Kept at the provider": "Not kept",
                    at + "Zero data retention": "Yes"}
    assert "Zero data retention</th><td><del>Yes</del></td><td><ins>No</ins>" in html.unescape(third.text)
    third_text = text_of(third.text)
    assert "Status today In force" in third_text
    assert "Expanding Yes: it widens what version 2 allowed" in third_text
    assert f"Prompts and inputs: {PROVIDER} keeps the data longer" in third_text
    assert v3.expanding
    assert "nothing to compare it with" in text_of(first.text)
    assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
    for bad in ("4", "0", "abc", "1e3"):
        assert (await client.get(f"/ai-commitments/versions/{bad}")).status_code == 404


def test_changes_to_named_lists_are_shown_item_by_item() -> None:
    old = commitments()
    new = changed(old, "files", providers=[{"name": "Other AI Inc.", "retention_days": 7,
                                            "abuse_monitoring_days": 0, "zero_data_retention": False}])
    new["features"] = [{**old["features"][0], "marking": "Visible watermark"},
                       {**old["features"][0], "name": "Search", "interacts_with_persons": False}]

    rows = plain.changes(ledger.field_changes(old, new))

    shown = {row.what: (row.before, row.after) for row in rows}
    assert shown[f"Uploaded files{SEP}Model provider Other AI Inc."][0] == "Not listed"
    assert "Kept at the provider: 7 days" in shown[f"Uploaded files{SEP}Model provider Other AI Inc."][1]
    assert shown[f"Uploaded files{SEP}Model provider {PROVIDER}"][1] == "Removed"
    assert shown[f"AI feature Document assistant{SEP}How generated outputs are marked"] == (
        "C2PA metadata on generated files", "Visible watermark")
    assert shown["AI feature Search"][0] == "Not listed"


# ---------------------------------------------------------------- JSON

async def test_the_json_holds_the_version_in_force_and_a_chain_anyone_can_recompute(client, world):
    ledger_ = await two_versions(world)

    response = await client.get("/ai-commitments.json")

    assert response.headers["content-type"] == "application/json"
    document = valid(response.json())
    assert (document["vendor"], document["as_of"], document["latest_version"]) == (
        "Lumen AI", utcnow().date().isoformat(), 2)
    assert document["in_force"]["number"] == 2
    assert document["in_force"]["url"] == "http://testserver/ai-commitments/versions/2"
    assert document["in_force"]["document"]["data_classes"]["telemetry"]["vendor_retention_days"] == 14
    assert [v["number"] for v in document["history"]] == [1, 2]
    previous = ledger.GENESIS
    for version in document["history"]:
        assert version["previous_sha256"] == previous
        day = dt.date.fromisoformat(version["effective_date"])
        assert version["sha256"] == ledger.chain_hash(version["number"], day, version["reason"],
                                                      version["document"], version["previous_sha256"])
        # ... and by how_to_verify alone, without the portal's code:
        hashed = {key: version[key] for key in ("number", "effective_date", "reason", "document", "previous_sha256")}
        canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        assert hashlib.sha256(canonical).hexdigest() == version["sha256"]
        previous = version["sha256"]
    assert previous == ledger_.v2.sha256
    assert "ledger" not in document["how_to_verify"] and "previous_sha256" in document["how_to_verify"]


async def test_the_json_as_of_a_day_before_the_second_version_holds_the_first(client, world):
    ledger_ = await two_versions(world)
    day = ledger_.v2.effective_date - dt.timedelta(days=1)

    document = valid((await client.get(f"/ai-commitments.json?as_of={day.isoformat()}")).json())

    assert (document["as_of"], document["in_force"]["number"], len(document["history"])) == (day.isoformat(), 1, 2)
    before = valid((await client.get("/ai-commitments.json?as_of=2000-01-01")).json())
    assert before["in_force"] is None and before["latest_version"] == 2


@pytest.mark.parametrize("as_of", ["yesterday", "2026-13-01", "2026-02-30", "20260101"])
async def test_a_malformed_as_of_is_a_clear_400(client, as_of):
    page = await client.get(f"/ai-commitments?as_of={as_of}")
    document = await client.get(f"/ai-commitments.json?as_of={as_of}")

    assert (page.status_code, document.status_code) == (400, 400)
    assert "as_of must be a date written YYYY-MM-DD" in text_of(page.text)
    assert document.json()["error"]["fields"]["as_of"].startswith("as_of must be a date written YYYY-MM-DD")


# ---------------------------------------------------------------- caching

@pytest.mark.parametrize("url", URLS)
async def test_every_answer_has_an_etag_and_answers_304(client, world, url):
    await two_versions(world)

    first = await client.get(url)

    assert first.status_code == 200
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=60"
    again = await client.get(url, headers={"if-none-match": etag})
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag)
    assert (await client.get(url, headers={"if-none-match": f'"other", W/{etag}'})).status_code == 304
    assert (await client.get(url, headers={"if-none-match": '"other"'})).status_code == 200


async def test_the_etag_changes_with_a_publish_and_with_the_day(client, world):
    ledger_ = await two_versions(world)
    before = {url: await client.get(url) for url in URLS[:2]}
    days = [ledger_.v1.effective_date, ledger_.v1.effective_date + dt.timedelta(days=1)]
    by_day = [await client.get(f"/ai-commitments.json?as_of={day.isoformat()}") for day in days]

    await publish(world, changed(commitments(), "telemetry", vendor_retention_days=7), effective=utcnow().date(),
                  reason="Telemetry kept 7 days")

    assert by_day[0].json()["in_force"] == by_day[1].json()["in_force"]
    assert by_day[0].headers["etag"] != by_day[1].headers["etag"]
    for url, old in before.items():
        new = await client.get(url, headers={"if-none-match": old.headers["etag"]})
        assert new.status_code == 200, url
        assert new.headers["etag"] != old.headers["etag"], url
        assert "Telemetry kept 7 days" in new.text and "Telemetry kept 7 days" not in old.text, url
