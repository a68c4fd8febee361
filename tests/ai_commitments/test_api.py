"""The AI commitments API (requirements 53, 55, 57, 60): the public versions with their chain of hashes; an
organisation's standing, timeline, acceptances and instructions for its own token only; accepting a widening
version and recording an instruction with ``ai_commitments:instruct``, refused as in the portal; every body
matches the documented schema."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.ai_commitments import ledger
from portal.ai_commitments.models import Acceptance, TrainingInstruction
from tests.ai_commitments.support import DAYS_AGO_40, changed, commitments, publish_version, register_provider
from tests.api.conftest import bearer, check_schema
from tests.breaches.test_breach_api import schema_of, token_for

API = "/api/v1"
STANDING = API + "/organisations/{org_id}/ai-commitments"
OPT_IN = {"training_use": "customer_opt_in", "training_models": "The client's own fine-tune"}


async def _arranged(world):
    """Version 1 (training on prompts if the client opts in) before Acme joined; version 2 keeps files longer."""
    await register_provider(world)
    await publish_version(world, changed(commitments(), "prompts", **OPT_IN), now=DAYS_AGO_40, reason="First")
    acme, globex = await world.client_org("Acme Logistics"), await world.client_org("Globex Corporation")
    await world.person(acme, Role.ADMIN)
    await world.commit()
    await publish_version(world, changed(commitments(), "prompts", **OPT_IN, vendor_retention_days=90),
                          reason="Prompts kept 90 days")
    return acme, globex


async def test_the_versions_are_public_with_their_chain(world, client):
    await _arranged(world)
    response = await client.get(API + "/ai-commitments/versions")
    assert response.status_code == 200
    check_schema(*(await schema_of(client, "/api/v1/ai-commitments/versions")), response.json())
    first, second = response.json()["items"]
    assert second["previous_sha256"] == first["sha256"] == (await ledger.versions(world.session))[0].sha256
    assert ledger.chain_hash(2, dt.date.fromisoformat(second["effective_date"]), second["reason"],
                             second["document"], first["sha256"]) == second["sha256"]
    assert second["expanding"] and second["changes"]["data_classes.prompts.vendor_retention_days"] == {
        "before": 30, "after": 90}


async def test_a_client_token_reads_its_standing_accepts_and_instructs(world, client):
    acme, globex = await _arranged(world)
    reader = await token_for(world, acme, "ai_commitments:read")
    tool = await token_for(world, acme, "ai_commitments:read", "ai_commitments:instruct", name="GRC tool")
    document, schema = await schema_of(client, STANDING)

    before = await client.get(STANDING.format(org_id=acme.id), headers=bearer(reader))
    assert before.status_code == 200, before.text
    check_schema(document, schema, before.json())
    body = before.json()
    assert (body["applying"]["number"], body["newest"]["state"]) == (1, "pending_acceptance")
    assert body["newest"]["widening"] == ["Prompts and inputs: kept longer at the vendor"]
    assert [entry["number"] for entry in body["timeline"]] == [1] and body["acceptances"] == []
    assert not any(setting["enabled"] for setting in body["training"])

    declined = await client.post(STANDING.format(org_id=acme.id) + "/declines", headers=bearer(tool),
                                 json={"version": 2, "reason": "Not before our DPO has read it"})
    assert declined.status_code == 201, declined.text
    body = (await client.get(STANDING.format(org_id=acme.id), headers=bearer(reader))).json()
    check_schema(document, schema, body)
    assert body["newest"]["state"] == "declined" and body["applying"]["number"] == 1
    assert [d["reason"] for d in body["declines"]] == ["Not before our DPO has read it"]

    accept = STANDING.format(org_id=acme.id) + "/acceptances"
    assert (await client.post(accept, json={"version": 2, "confirm": True}, headers=bearer(reader))).status_code == 403
    unconfirmed = await client.post(accept, json={"version": 2, "confirm": False}, headers=bearer(tool))
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.json()["error"]["fields"]
    assert (await client.post(accept, json={"version": "2", "confirm": True}, headers=bearer(tool))).status_code == 400
    assert await world.session.scalar(select(func.count()).select_from(Acceptance)) == 0
    accepted = await client.post(accept, json={"version": 2, "confirm": True}, headers=bearer(tool))
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["accepted_by"].endswith("GRC tool") and accepted.json()["number"] == 2
    again = await client.post(accept, json={"version": 2, "confirm": True}, headers=bearer(tool))
    assert again.status_code == 400

    instruct = STANDING.format(org_id=acme.id) + "/instructions"
    refused = await client.post(instruct, json={"data_class": "outputs", "training": True, "note": "Try"},
                                headers=bearer(tool))
    assert refused.status_code == 400 and "data_class" in refused.json()["error"]["fields"]
    given = await client.post(instruct, json={"data_class": "prompts", "training": True, "note": "DPO approved"},
                              headers=bearer(tool))
    assert given.status_code == 201 and given.json()["commitments_version"] == 2
    assert await world.session.scalar(select(func.count()).select_from(TrainingInstruction)) == 1

    after = (await client.get(STANDING.format(org_id=acme.id), headers=bearer(reader))).json()
    check_schema(document, schema, after)
    assert (after["applying"]["number"], after["newest"]["state"]) == (2, "in_effect")
    assert [a["number"] for a in after["acceptances"]] == [2] and after["timeline"][-1]["accepted_at"]
    assert {s["data_class"]: s["enabled"] for s in after["training"]}["prompts"] is True
    assert [i["note"] for i in after["instructions"]] == ["DPO approved"]

    globex_view = (await client.get(STANDING.format(org_id=globex.id),
                                    headers=bearer(await token_for(world, globex, "ai_commitments:read")))).json()
    assert globex_view["newest"]["state"] == "pending_acceptance" and globex_view["instructions"] == []
    assert (await client.get(STANDING.format(org_id=globex.id), headers=bearer(reader))).status_code == 404
