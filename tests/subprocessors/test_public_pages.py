"""The public sub-processor pages (no login): the list in force today and on any day (legal requirement 32), the chain
nested under its parent (29), upcoming changes, the subscribe box, the history, a page per version and the
differences between any two versions; bad input answers 400 or 404 with a message."""

from __future__ import annotations

import datetime as dt
import html
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.db import utcnow
from portal.notifications.models import PublicSubscriber, SubscriberStatus
from portal.subprocessors import publishing
from portal.subprocessors.models import ListVersion
from tests.subprocessors.support import entry_data, publish, vendor_legal

ROW = re.compile(r'<tr id="entry-([0-9a-f-]+)"')


@dataclass
class History:
    """Three versions: v1 took effect 65 days ago, v2 25 days ago, v3 is announced today for the future."""

    v1: ListVersion
    v2: ListVersion
    v3: ListVersion
    ids: dict[str, str]  # entry name -> id
    actor: Actor  # vendor legal, who published them

    def names(self, ids: list[str]) -> list[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return [by_id[i] for i in ids]


async def three_versions(world: Any) -> History:
    """v1: Alpha Hosting and Beta Mail (under Alpha); v2: adds Gamma Vector, removes Delta Logs, moves Beta Mail to
    the US; v3 (upcoming): adds Epsilon Models, an AI model provider in Japan. The past versions leave a few days
    more than the 30-day notice period."""
    actor = await vendor_legal(world)
    now, today = utcnow(), utcnow().date()
    alpha = await publishing.draft_entry(world.session, actor=actor, raw=entry_data("Alpha Hosting"))
    beta = await publishing.draft_entry(world.session, actor=actor, raw=entry_data(
        "Beta Mail", parent_id=str(alpha.entry_id)))
    delta = await publishing.draft_entry(world.session, actor=actor, raw=entry_data("Delta Logs"))
    ids = {"Alpha Hosting": str(alpha.entry_id), "Beta Mail": str(beta.entry_id), "Delta Logs": str(delta.entry_id)}
    v1 = await publish(world, actor, now=now - dt.timedelta(days=100), effective=today - dt.timedelta(days=65))
    await publishing.draft_removal(world.session, actor=actor, entry_id=ids["Delta Logs"])
    await publishing.draft_entry(world.session, actor=actor, entry_id=ids["Beta Mail"], raw=entry_data(
        "Beta Mail", parent_id=ids["Alpha Hosting"], locations="DE, US", transfer_mechanism="scc_module_3"))
    v2 = await publish(world, actor, "Gamma Vector", now=now - dt.timedelta(days=60),
                       effective=today - dt.timedelta(days=25))
    v3 = await publish(world, actor, entry_data("Epsilon Models", locations="JP", ai_model_provider="on"))
    for version in (v2, v3):
        for entry in version.document["entries"]:
            ids.setdefault(entry["name"], entry["id"])
    return History(v1, v2, v3, ids, actor)


def listed(page: str, history: History) -> list[str]:
    return history.names(ROW.findall(page))


def text_of(page: str) -> str:
    """The page's visible text, whitespace collapsed (and none left before punctuation)."""
    text = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))
    return re.sub(r" ([,.:;)])", r"\1", text)


async def test_before_anything_is_published_the_page_says_so(client):
    response = await client.get("/subprocessors")

    assert response.status_code == 200
    assert "none has been published yet" in text_of(response.text)
    assert ROW.findall(response.text) == []


async def test_the_list_in_force_today_with_the_chain_upcoming_changes_and_history(client, world):
    history = await three_versions(world)

    response = await client.get("/subprocessors")

    assert response.status_code == 200
    page = response.text
    # Beta Mail is engaged by Alpha Hosting: it comes right after it, one level down (requirement 29).
    assert listed(page, history) == ["Alpha Hosting", "Beta Mail", "Gamma Vector"]
    text = text_of(page)
    assert f"In force today ({utcnow().date().isoformat()}): version 2" in text
    assert history.v2.sha256 in page
    assert "engaged by Alpha Hosting" in text
    assert "United States (US): Standard contractual clauses (2021/914), module 3" in text
    assert "Germany (DE): EEA" in text
    upcoming = text.split("Upcoming changes")[1].split("Get told about changes")[0]
    assert f"Version 3, effective {history.v3.effective_date.isoformat()}" in upcoming
    assert "New sub-processor: Epsilon Models" in upcoming
    assert "Japan (JP)" in upcoming
    assert "Epsilon Models: hosting of the production platform" in upcoming  # its purpose
    # History, newest first, each with its hash and page.
    positions = [page.index(f'id="v{n}"') for n in (3, 2, 1)]
    assert positions == sorted(positions)
    for version in (history.v1, history.v2, history.v3):
        assert version.sha256 in page
        assert f'href="/subprocessors/versions/{version.number}"' in page
    for link in ('href="/subprocessors.json"', 'href="/subprocessors.csv"', 'href="/subprocessors.atom"'):
        assert link in page


async def test_as_of_shows_exactly_the_list_in_force_that_day(client, world):
    history = await three_versions(world)
    today = utcnow().date()
    expected = {
        history.v1.effective_date - dt.timedelta(days=1): [],
        history.v1.effective_date: ["Alpha Hosting", "Beta Mail", "Delta Logs"],
        today - dt.timedelta(days=50): ["Alpha Hosting", "Beta Mail", "Delta Logs"],
        history.v2.effective_date - dt.timedelta(days=1): ["Alpha Hosting", "Beta Mail", "Delta Logs"],
        history.v2.effective_date: ["Alpha Hosting", "Beta Mail", "Gamma Vector"],
        today: ["Alpha Hosting", "Beta Mail", "Gamma Vector"],
        history.v3.effective_date: ["Alpha Hosting", "Beta Mail", "Epsilon Models", "Gamma Vector"],
    }

    for day, names in expected.items():
        response = await client.get(f"/subprocessors?as_of={day.isoformat()}")
        assert response.status_code == 200, day
        assert listed(response.text, history) == names, day


async def test_before_the_first_version_the_list_is_empty_with_a_sentence(client, world):
    history = await three_versions(world)
    day = history.v1.effective_date - dt.timedelta(days=1)

    response = await client.get(f"/subprocessors?as_of={day.isoformat()}")

    text = text_of(response.text)
    assert f"No sub-processor list was in force on {day.isoformat()}: the first version took effect on " \
           f"{history.v1.effective_date.isoformat()}" in text
    # What was announced by then: version 1, not the later ones.
    upcoming = text.split("Upcoming changes")[1].split("Get told about changes")[0]
    assert "Version 1, effective" in upcoming
    assert "Version 2" not in upcoming and "Version 3" not in upcoming


async def test_a_malformed_as_of_is_refused_with_a_message(client):
    for value in ("2026-13-01", "yesterday", "20260101", "2026-1-1"):
        response = await client.get("/subprocessors", params={"as_of": value})
        assert response.status_code == 400, value
        assert "as_of must be a date written YYYY-MM-DD" in response.text


async def test_the_subscribe_box_leads_to_the_prefilled_subscription_form(client, world, db, mail):
    await three_versions(world)
    page = (await client.get("/subprocessors")).text
    form = page.split('<form method="get" action="/subscribe"')[1].split("</form>")[0]
    assert 'name="topics" value="subprocessors"' in form
    assert 'name="email"' in form
    assert "csrf_token" not in form  # the box only leads on: the list page holds nothing per visitor

    prefilled = await client.get("/subscribe", params={"topics": "subprocessors", "email": "prospect@example.org"})
    assert 'value="prospect@example.org"' in prefilled.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', prefilled.text)
    assert token is not None
    response = await client.post("/subscribe", data={"csrf_token": token.group(1), "topics": "subprocessors",
                                                     "email": "prospect@example.org"})

    assert response.status_code == 303
    [subscriber] = (await db.execute(select(PublicSubscriber))).scalars().all()
    assert (subscriber.email, subscriber.topics, subscriber.status) == (
        "prospect@example.org", ["subprocessors"], SubscriberStatus.PENDING)


async def test_every_visitor_gets_the_same_page(client, world, login_as):
    """The page is cached once for everyone: a logged-in visitor's name or session never reaches another."""
    await three_versions(world)
    member = await world.person(await world.vendor(), Role.LEGAL, email="vera.vendor@lumen.example",
                                name="Vera Vendorstaff")
    staff = await login_as(member)
    first = await staff.get("/subprocessors")
    second = await client.get("/subprocessors")

    assert first.status_code == second.status_code == 200
    assert "Vera Vendorstaff" not in first.text
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]


async def test_pages_need_no_script_or_inline_style(client, world):
    history = await three_versions(world)
    for url in ("/subprocessors", f"/subprocessors/versions/{history.v2.number}", "/subprocessors/diff?from=1&to=3"):
        page = (await client.get(url)).text
        assert "<script" not in page and "<style" not in page and " style=" not in page, url


async def test_a_version_page_shows_its_entries_changes_hash_and_neighbours(client, world):
    history = await three_versions(world)

    response = await client.get("/subprocessors/versions/2")

    assert response.status_code == 200
    page = response.text
    text = text_of(page)
    assert listed(page, history) == ["Alpha Hosting", "Beta Mail", "Gamma Vector"]
    assert history.v2.sha256 in page
    assert f"Effective date {history.v2.effective_date.isoformat()}" in text
    assert "Status today In force" in text
    changes = text.split("Changes in this version")[1].split("The list")[0]
    assert "New sub-processor: Gamma Vector" in changes
    assert "Removal: Delta Logs" in changes
    assert "Change: Beta Mail" in changes
    assert "What changes Locations (ISO 3166 country codes), Transfer mechanism" in changes
    assert 'href="/subprocessors/versions/1"' in page
    assert 'href="/subprocessors/versions/3"' in page
    assert 'href="/subprocessors/diff?from=1&amp;to=2"' in page
    assert "Status today Upcoming" in text_of((await client.get("/subprocessors/versions/3")).text)
    assert "Status today Superseded" in text_of((await client.get("/subprocessors/versions/1")).text)


async def test_an_unknown_version_answers_404(client, world):
    await three_versions(world)
    for number in ("4", "0", "abc", "-1", "99999999999999999999"):
        response = await client.get(f"/subprocessors/versions/{number}")
        assert response.status_code == 404, number
        assert "There is no such version of the sub-processor list. The newest is version 3." in response.text


async def test_the_differences_between_two_versions_field_by_field(client, world):
    history = await three_versions(world)

    response = await client.get("/subprocessors/diff?from=1&to=3")

    assert response.status_code == 200
    text = text_of(response.text)
    assert "1 removed" in text and "2 added" in text and "1 changed" in text
    added = text.split("Added")[1].split("Removed")[0]
    assert "Gamma Vector" in added and "Epsilon Models" in added
    removed = text.split("Removed")[1].split("Changed")[0]
    assert "Delta Logs" in removed and "Gamma Vector" not in removed
    changed = text.split("Changed")[-1]
    assert "Beta Mail" in changed
    assert "Locations (ISO 3166 country codes) DE DE; US" in changed  # label, before, after
    assert "Transfer mechanism (empty) Standard contractual clauses (2021/914), module 3" in changed
    assert history.v1.sha256 in response.text and history.v3.sha256 in response.text

    backwards = text_of((await client.get("/subprocessors/diff?from=3&to=1")).text)
    assert "2 removed" in backwards and "1 added" in backwards


async def test_the_diff_refuses_missing_bad_and_unknown_numbers(client, world):
    await three_versions(world)
    cases = {
        "/subprocessors/diff": (400, "Choose the two versions to compare"),
        "/subprocessors/diff?from=1": (400, "Choose the two versions to compare"),
        "/subprocessors/diff?from=one&to=2": (400, "from and to must be version numbers"),
        "/subprocessors/diff?from=1&to=9": (404, "There is no version 9: the newest is version 3."),
        "/subprocessors/diff?from=0&to=2": (404, "There is no version 0: the newest is version 3."),
    }
    for url, (status, message) in cases.items():
        response = await client.get(url)
        assert response.status_code == status, url
        assert message in response.text, url
        assert 'action="/subprocessors/diff"' in response.text  # the form to try again
