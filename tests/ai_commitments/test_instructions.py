"""Training on a client's data is off until its admin records an instruction; no vendor version switches it on
(legal requirement 55); clients see their settings, instructions and the commitments in force (requirement 60)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.accounts.roles import Role
from portal.ai_commitments import instructions, ledger
from portal.ai_commitments.models import ImmutableVersion, TrainingInstruction
from portal.errors import Forbidden, InvalidInput
from tests.ai_commitments.support import SYSTEM, changed, commitments, register_provider
from tests.conftest import post_form
from tests.signing.support import actor, loaded

TODAY = dt.date.today().isoformat()


async def _publish(db, raw) -> None:
    draft = await ledger.save_draft(db, actor=SYSTEM, raw=raw)
    await ledger.publish(db, actor=SYSTEM, draft_id=str(draft.id), effective_date=TODAY, reason="Update")


async def test_a_vendor_version_never_switches_training_on_only_the_clients_admin_does(world, db):
    await register_provider(world)
    org = await world.client_org("Acme Logistics")
    admin = await loaded(world, await world.person(org, Role.ADMIN))
    member = await loaded(world, await world.person(org, Role.MEMBER))
    await _publish(db, changed(commitments(), "feedback", training_use="customer_opt_out",
                               training_models="Our own ranking model"))
    await world.commit()
    assert not any(s.enabled for s in await instructions.settings_of(db, org))  # opt-out version: still off

    with pytest.raises(InvalidInput) as refused:
        await instructions.record(db, actor=actor(admin), org=org, data_class="prompts", enabled=True, note="Try")
    assert "data_class" in refused.value.fields  # prompts: training use 'none' in force, nothing to switch on
    with pytest.raises(InvalidInput):
        await instructions.record(db, actor=actor(admin), org=org, data_class="feedback", enabled=True, note=" ")
    with pytest.raises(Forbidden):
        await instructions.record(db, actor=actor(member), org=org, data_class="feedback", enabled=True,
                                  note="Members cannot instruct")
    row = await instructions.record(db, actor=actor(admin), org=org, data_class="feedback", enabled=True,
                                    note="Our DPO approved ranking improvements")
    await world.commit()
    settings = {s.data_class: s.enabled for s in await instructions.settings_of(db, org)}
    assert settings["feedback"] is True and not any(v for k, v in settings.items() if k != "feedback")
    assert (row.given_by, row.commitments_version) == (actor(admin).label, 1)

    await _publish(db, changed(commitments(), "feedback", training_use="customer_opt_out",
                               training_models="Our own ranking model", vendor_retention_days=20))
    await world.commit()
    assert {s.data_class: s.enabled for s in await instructions.settings_of(db, org)}["feedback"] is True
    row.note = "rewritten"
    with pytest.raises(ImmutableVersion):
        await db.flush()
    await db.rollback()


async def test_the_client_page_shows_settings_and_records_instructions(world, login_as, db):
    await register_provider(world)
    await _publish(db, changed(commitments(), "feedback", training_use="customer_opt_in",
                               training_models="Our own ranking model"))
    await world.commit()
    org = await world.client_org("Acme Logistics")
    admin = await login_as(await world.person(org, Role.ADMIN))
    other = await login_as(await world.person(await world.client_org("Globex"), Role.ADMIN))
    page = await admin.get(f"/orgs/{org.id}/ai-commitments")
    assert page.status_code == 200 and "never switched on" in page.text and "Mistral AI SAS" in page.text
    refused = await post_form(admin, f"/orgs/{org.id}/ai-commitments/instructions",
                              {"data_class": "feedback", "training": "on", "note": ""})
    assert refused.status_code == 400 and 'id="note-error"' in refused.text
    done = await post_form(admin, f"/orgs/{org.id}/ai-commitments/instructions",
                           {"data_class": "feedback", "training": "on", "note": "Approved by our DPO"})
    assert done.status_code == 303
    assert "Approved by our DPO" in (await admin.get(f"/orgs/{org.id}/ai-commitments")).text
    assert (await other.get(f"/orgs/{org.id}/ai-commitments")).status_code == 404
    assert (await post_form(other, f"/orgs/{org.id}/ai-commitments/instructions",
                            {"data_class": "feedback", "training": "on", "note": "x"})).status_code == 404
    assert len((await db.execute(select(TrainingInstruction))).scalars().all()) == 1
