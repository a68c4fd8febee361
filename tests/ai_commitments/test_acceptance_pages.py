"""The pages around acceptance: the client's page shows a widening version with what it changes and lets only its
admin accept it (a refusal changes nothing), shows what applied on any date; the vendor's board shows each client's
standing and notice; Annex V of a client's DPA shows the version applying to that client (requirements 57, 60)."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.agreements.document import document_blocks
from portal.ai_commitments.models import Acceptance, Decline
from tests.ai_commitments.support import DAYS_AGO_40, changed, commitments, publish_version, register_provider
from tests.conftest import post_form
from tests.signing.support import executed_agreement, parties, published_template

WIDER = {"training_use": "customer_opt_in", "training_models": "The client's own fine-tune"}


async def _two_versions(world):
    await register_provider(world)
    await publish_version(world, commitments(), now=DAYS_AGO_40, reason="First")


async def _accepted(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(Acceptance)))


async def test_the_client_admin_sees_the_widening_version_and_accepts_it(world, login_as, db):
    await _two_versions(world)
    acme, globex = await world.client_org("Acme Logistics"), await world.client_org("Globex Corporation")
    admin = await login_as(await world.person(acme, Role.ADMIN))
    member = await login_as(await world.person(acme, Role.MEMBER))
    stranger = await login_as(await world.person(globex, Role.ADMIN))
    await world.commit()
    await publish_version(world, changed(commitments(), "feedback", **WIDER), reason="Ranking from feedback")
    url = f"/orgs/{acme.id}/ai-commitments"

    page = (await admin.get(url)).text
    assert 'id="pending"' in page and "Version 2 waits for Acme Logistics" in page
    assert "Feedback: training use widens to" in page and "Ranking from feedback" in page
    assert "<del>None: not used to train or improve any model</del>" in page  # the changes table
    assert 'data-version="1"' in page and "Accept version 2" in page
    assert "Accept version 2</button>" not in (await member.get(url)).text
    assert "admins accept a version" in (await member.get(url)).text

    refused = await post_form(admin, url + "/acceptances", {"version": "2"})
    assert refused.status_code == 400 and 'id="confirm-error"' in refused.text and await _accepted(db) == 0
    assert (await post_form(member, url + "/acceptances", {"version": "2", "confirm": "yes"})).status_code == 403
    assert (await post_form(stranger, url + "/acceptances", {"version": "2", "confirm": "yes"})).status_code == 404
    assert (await stranger.get(url)).status_code == 404
    assert await _accepted(db) == 0

    done = await post_form(admin, url + "/acceptances", {"version": "2", "confirm": "yes"})
    assert done.status_code == 303 and await _accepted(db) == 1
    page = (await admin.get(url)).text
    assert 'id="pending"' not in page and re.search(r'<strong data-version="2">2</strong>\s+since', page)
    again = await post_form(admin, url + "/acceptances", {"version": "2", "confirm": "yes"})
    assert again.status_code == 400 and "accepted version 2 already" in again.text and await _accepted(db) == 1


async def test_the_client_admin_declines_with_a_reason_the_vendor_reads(world, login_as, db):
    await _two_versions(world)
    acme = await world.client_org("Acme Logistics")
    admin = await login_as(await world.person(acme, Role.ADMIN))
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    await publish_version(world, changed(commitments(), "feedback", **WIDER))
    url = f"/orgs/{acme.id}/ai-commitments"
    assert "Decline version 2" in (await admin.get(url)).text

    refused = await post_form(admin, url + "/declines", {"version": "2", "reason": ""})
    assert refused.status_code == 400 and 'id="reason-error"' in refused.text
    assert await db.scalar(select(func.count()).select_from(Decline)) == 0
    done = await post_form(admin, url + "/declines", {"version": "2", "reason": "Our works council objects"})
    assert done.status_code == 303 and await db.scalar(select(func.count()).select_from(Decline)) == 1
    page = (await admin.get(url)).text
    assert 'id="declined"' in page and "Our works council objects" in page and "Decline version 2" not in page
    assert "Accept version 2</button>" in page  # it may still accept
    assert 'data-version="1"' in page
    board = (await legal.get("/ai-commitments/manage")).text
    assert '<tr data-org="Acme Logistics" data-state="declined">' in board and "Our works council objects" in board


async def test_the_client_page_shows_what_applied_on_any_date(world, login_as):
    await _two_versions(world)
    acme = await world.client_org("Acme Logistics")
    admin = await login_as(await world.person(acme, Role.ADMIN))
    await publish_version(world, changed(commitments(), "telemetry", vendor_retention_days=14),
                          reason="Telemetry kept 14 days")
    url = f"/orgs/{acme.id}/ai-commitments"
    today = dt.datetime.now(dt.UTC).date()
    shown = (await admin.get(url, params={"on": (today - dt.timedelta(days=20)).isoformat()})).text
    assert re.search(r'id="shown">On [\d-]+, version <strong>1</strong>', shown)
    assert re.search(r'id="shown">On [\d-]+, version <strong>2</strong>', (await admin.get(url)).text)
    before = (await admin.get(url, params={"on": "2020-01-01"})).text
    assert "no version of the commitments applied to Acme Logistics" in before
    bad = await admin.get(url, params={"on": "yesterday"})
    assert bad.status_code == 200 and "is not a date (YYYY-MM-DD): showing today" in bad.text


async def test_the_vendor_board_shows_each_clients_standing_and_notice(world, login_as, db):
    await _two_versions(world)
    acme = await world.client_org("Acme Logistics")
    await world.client_org("Globex Corporation")
    admin = await login_as(await world.person(acme, Role.ADMIN))
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    await publish_version(world, changed(commitments(), "prompts", vendor_retention_days=60))
    await post_form(admin, f"/orgs/{acme.id}/ai-commitments/acceptances", {"version": "2", "confirm": "yes"})

    board = (await legal.get("/ai-commitments/manage")).text
    rows = dict(re.findall(r'<tr data-org="([^"]+)" data-state="([a-z_]+)">', board))
    assert rows == {"Acme Logistics": "in_effect", "Globex Corporation": "pending_acceptance"}
    assert "Prompts and inputs: kept longer at the vendor" in board
    assert len(re.findall(r'href="/orgs/[0-9a-f-]+/notices/[0-9a-f-]+"', board)) == 2
    assert (await admin.get("/ai-commitments/manage")).status_code == 404


async def test_annex_v_shows_the_version_applying_to_the_client(world, settings, db):
    """Globex has not accepted version 2, so its DPA's Annex V still records version 1."""
    await _two_versions(world)
    await published_template(world)
    signing = await parties(world)
    await publish_version(world, changed(commitments(), "feedback", **WIDER))
    agreement = await executed_agreement(world, signing, settings)
    assert agreement.bound_to["ai_commitments"]["version"] == 1
    text = "\n".join(b.text or "" for b in document_blocks(agreement.document_docx))
    assert "version 1 of the Processor's AI" in text
