"""The vendor's ledger pages: a draft from the form (refusals beside their fields, nothing saved), what it would
change and whether it widens, publishing it; clients and read-only staff cannot act."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.ai_commitments import form, ledger
from portal.ai_commitments.models import CommitmentVersion
from tests.ai_commitments.support import SYSTEM, commitments, register_provider
from tests.conftest import post_form


async def _first_version(db) -> CommitmentVersion:
    draft = await ledger.save_draft(db, actor=SYSTEM, raw=commitments())
    return await ledger.publish(db, actor=SYSTEM, draft_id=str(draft.id), effective_date=dt.date.today().isoformat(),
                                reason="First")


async def _count(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(CommitmentVersion)))


async def test_legal_drafts_from_the_version_in_force_and_publishes_an_expanding_change(world, login_as, db):
    await register_provider(world)
    await _first_version(db)
    await world.commit()
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    page = await legal.get("/ai-commitments/manage")
    assert page.status_code == 200 and "Mistral AI SAS | none | 0 | zdr" in page.text  # filled from version 1
    values = form.values((await ledger.latest(db)).document)

    refused = await post_form(legal, "/ai-commitments/manage/drafts",
                              {**values, "data_classes.outputs.vendor_retention_days": "forever"})
    assert refused.status_code == 400 and 'id="data_classes.outputs.vendor_retention_days-error"' in refused.text
    assert 'value="forever"' in refused.text and await _count(db) == 1

    saved = await post_form(legal, "/ai-commitments/manage/drafts",
                            {**values, "data_classes.outputs.vendor_retention_days": "400"})
    assert saved.status_code == 303
    draft_page = (await legal.get(saved.headers["location"])).text
    assert "<strong>Expanding</strong>" in draft_page and "kept longer at the vendor" in draft_page
    url = saved.headers["location"]
    missing = await post_form(legal, url + "/publish", {"effective_date": dt.date.today().isoformat(), "reason": ""})
    assert missing.status_code == 400 and 'id="reason-error"' in missing.text
    published = await post_form(legal, url + "/publish", {"effective_date": dt.date.today().isoformat(),
                                                         "reason": "Outputs kept 400 days for audit trails"})
    assert published.status_code == 303 and published.headers["location"] == "/ai-commitments/manage"
    ledger_page = (await legal.get("/ai-commitments/manage")).text
    assert "Published as version 2; every client and public subscriber is notified" in ledger_page
    latest = await ledger.latest(db)
    assert (latest.number, latest.expanding) == (2, True)


async def test_unregistered_providers_are_refused_and_clients_cannot_reach_the_pages(world, login_as, db):
    await register_provider(world)
    await _first_version(db)
    await world.commit()
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    values = form.values((await ledger.latest(db)).document)
    values["data_classes.prompts.providers"] += "\nShadow Models Ltd | 30 | 30 | no"
    refused = await post_form(legal, "/ai-commitments/manage/drafts", values)
    assert refused.status_code == 400 and "Shadow Models Ltd must be a registered sub-processor" in refused.text
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    assert (await viewer.get("/ai-commitments/manage")).status_code == 200
    assert (await post_form(viewer, "/ai-commitments/manage/drafts", values)).status_code == 403
    client = await login_as(await world.person(await world.client_org("Acme Logistics"), Role.ADMIN))
    assert (await client.get("/ai-commitments/manage")).status_code == 404
    assert (await post_form(client, "/ai-commitments/manage/drafts", values)).status_code == 404
    assert await _count(db) == 1
    assert not re.search(r"Shadow Models", str((await ledger.latest(db)).document))
