"""A client's agreements page: vendor legal records an agreement signed outside the portal, supersedes it and ends
it; bad dates, notice days and missing fields are refused beside their field and save nothing; a client's own
members read theirs, vendor viewers read any, and another client gets 404."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.accounts.roles import Role
from portal.agreements.models import Agreement, AgreementStatus, Authorisation
from portal.audit.models import AuditEvent
from portal.db import make_sessionmaker
from tests.conftest import post_form

VALID = {"reference": "DPA 2025-03 (signed PDF)", "signed_on": "2025-03-01", "authorisation": "specific",
         "notice_days": "45"}


@pytest.fixture
async def acme(world):
    return await world.client_org("Acme Logistics")


@pytest.fixture
async def legal(world, login_as):
    return await login_as(await world.person(await world.vendor(), Role.LEGAL, email="lena@lumen.example"))


def page_of(org: Any) -> str:
    return f"/orgs/{org.id}/agreements"


async def agreements(engine: AsyncEngine) -> list[Agreement]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.execute(select(Agreement).order_by(Agreement.created_at))).scalars())


async def audit_count(engine: AsyncEngine) -> int:
    async with make_sessionmaker(engine)() as session:
        return int((await session.execute(select(func.count()).select_from(AuditEvent))).scalar_one())


def field_message(page: str, name: str) -> str:
    match = re.search(rf'<p class="flash flash-error" id="{name}-error" role="alert">(.*?)</p>', page, re.S)
    assert match, f"no message beside {name}"
    return html.unescape(match.group(1))


def history_rows(page: str) -> list[str]:
    table = page[page.index('id="history-heading"'):]
    rows = re.findall(r"<tr>(.*?)</tr>", table[:table.index("</table>")], re.S)[1:]  # after the header
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in rows]


async def test_legal_records_supersedes_and_ends_an_agreement(legal, acme, engine):
    empty = await legal.get(page_of(acme))
    assert empty.status_code == 200 and "has no active agreement" in empty.text
    assert "Record an agreement signed outside the portal" in empty.text

    recorded = await post_form(legal, page_of(acme), VALID)
    assert recorded.status_code == 303 and recorded.headers["location"] == page_of(acme)
    page = (await legal.get(page_of(acme))).text
    assert "Agreement DPA 2025-03 (signed PDF) is recorded" in page
    assert Authorisation.SPECIFIC.label in page and "45 days" in page
    [first] = await agreements(engine)
    assert (first.reference, first.signed_on, first.subprocessor_authorisation, first.notice_days) == (
        "DPA 2025-03 (signed PDF)", dt.date(2025, 3, 1), Authorisation.SPECIFIC, 45)

    superseding = await post_form(legal, page_of(acme), {"reference": "DPA 2026", "signed_on": "2026-01-05",
                                                         "authorisation": "general", "notice_days": ""})
    assert superseding.status_code == 303
    rows = history_rows((await legal.get(page_of(acme))).text)
    assert rows[0].startswith("DPA 2026 2026-01-05") and "default (30 days)" in rows[0]
    assert rows[0].endswith("Executed, in force")
    assert rows[1].startswith("DPA 2025-03 (signed PDF) 2025-03-01") and "45 days" in rows[1]
    assert "Superseded" in rows[1] and rows[1].endswith("superseded by DPA 2026")
    first, second = await agreements(engine)
    assert first.status is AgreementStatus.SUPERSEDED and second.status is AgreementStatus.EXECUTED

    ended = await post_form(legal, f"{page_of(acme)}/{second.id}/end", {"reason": "Contract terminated by Acme"})
    assert ended.status_code == 303
    page = (await legal.get(page_of(acme))).text
    assert "has no active agreement" in page and "Contract terminated by Acme" in page
    assert [a.status for a in await agreements(engine)] == [AgreementStatus.SUPERSEDED, AgreementStatus.TERMINATED]
    again = await post_form(legal, f"{page_of(acme)}/{second.id}/end", {"reason": "Twice"})
    assert again.status_code == 400 and "This agreement has already ended." in again.text


TOMORROW = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=2)).isoformat()


@pytest.mark.parametrize(("field", "typed", "message"), [
    ("reference", "", "Give the agreement a reference, e.g. 'DPA 2025-03 (signed PDF)'."),
    ("signed_on", "2025-13-01", "Enter the signature date as YYYY-MM-DD."),
    ("signed_on", "1 March 2025", "Enter the signature date as YYYY-MM-DD."),
    ("signed_on", TOMORROW, "The signature date cannot be in the future."),
    ("notice_days", "0", "Enter a number of days from 1 to 365, or leave it empty."),
    ("notice_days", "400", "Enter a number of days from 1 to 365, or leave it empty."),
    ("notice_days", "thirty", "Enter a number of days from 1 to 365, or leave it empty."),
    ("authorisation", "implied", "Choose general or specific authorisation."),
])
async def test_bad_input_is_refused_beside_its_field_and_saves_nothing(field, typed, message, legal, acme, engine):
    await post_form(legal, page_of(acme), VALID)
    before, audit_before = await agreements(engine), await audit_count(engine)

    refused = await post_form(legal, page_of(acme), {**VALID, "reference": "DPA 2026", field: typed})

    assert refused.status_code == 400
    assert field_message(refused.text, field) == message
    if field != "authorisation":
        assert f'name="{field}" value="{html.escape(typed)}"' in refused.text  # kept as typed
    assert [(a.id, a.status) for a in await agreements(engine)] == [(a.id, a.status) for a in before]
    assert await audit_count(engine) == audit_before


async def test_ending_needs_a_reason(legal, acme, engine):
    await post_form(legal, page_of(acme), VALID)
    [active] = await agreements(engine)

    refused = await post_form(legal, f"{page_of(acme)}/{active.id}/end", {"reason": "  "})

    assert refused.status_code == 400 and field_message(refused.text, "reason") == "Required."
    assert (await agreements(engine))[0].status is AgreementStatus.EXECUTED


async def test_client_members_read_their_own_agreements(world, login_as, legal, acme, engine):
    await post_form(legal, page_of(acme), VALID)
    [active] = await agreements(engine)
    member = await login_as(await world.person(acme, Role.MEMBER))
    admin = await login_as(await world.person(acme, Role.ADMIN))

    for reader in (member, admin):
        page = await reader.get(page_of(acme))
        assert page.status_code == 200 and "DPA 2025-03 (signed PDF)" in page.text and "Read-only" in page.text
        assert f'action="{page_of(acme)}"' not in page.text and "/end" not in page.text
        assert (await post_form(reader, page_of(acme), {**VALID, "reference": "Forged"})).status_code == 404
        assert (await post_form(reader, f"{page_of(acme)}/{active.id}/end", {"reason": "x"})).status_code == 404
    assert [(a.reference, a.status) for a in await agreements(engine)] == [
        ("DPA 2025-03 (signed PDF)", AgreementStatus.EXECUTED)]


async def test_vendor_viewers_read_and_cannot_change(world, login_as, legal, acme, engine):
    await post_form(legal, page_of(acme), VALID)
    [active] = await agreements(engine)
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))

    page = await viewer.get(page_of(acme))
    assert page.status_code == 200 and "DPA 2025-03 (signed PDF)" in page.text and "Read-only" in page.text
    assert (await post_form(viewer, page_of(acme), VALID)).status_code == 403
    assert (await post_form(viewer, f"{page_of(acme)}/{active.id}/end", {"reason": "x"})).status_code == 403
    assert len(await agreements(engine)) == 1


async def test_another_client_and_the_vendor_org_answer_404(world, login_as, legal, acme, engine):
    await post_form(legal, page_of(acme), VALID)
    [active] = await agreements(engine)
    other = await login_as(await world.person(await world.client_org("Beta Bank"), Role.ADMIN))

    page = await other.get(page_of(acme))
    assert page.status_code == 404 and "DPA 2025-03" not in page.text and "Acme Logistics" not in page.text
    assert (await post_form(other, f"{page_of(acme)}/{active.id}/end", {"reason": "x"})).status_code == 404
    assert (await legal.get(page_of(await world.vendor()))).status_code == 404
    beta = await world.client_org("Gamma GmbH")
    # An agreement named under another client's path is not found there.
    assert (await post_form(legal, f"{page_of(beta)}/{active.id}/end", {"reason": "x"})).status_code == 404
    assert (await agreements(engine))[0].status is AgreementStatus.EXECUTED
