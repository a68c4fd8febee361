"""The client's sub-processor view in the API: the documented schema, the ``subprocessors:read`` scope, a client
token reading only its own organisation, a vendor token reading any client's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx

from portal.accounts.models import Organisation
from portal.accounts.tokens.service import create_token
from portal.actors import Actor
from portal.db import make_sessionmaker, utcnow
from portal.subprocessors import publishing, responses
from tests.api.conftest import bearer, check_schema
from tests.subprocessors.support import BASE_URL, entry_data, publish, vendor_legal
from tests.subprocessors.test_client_view import PAST, client_with_agreement, rows_of

PATH = "/api/v1/organisations/{org_id}/subprocessors"


async def token_for(world: Any, org: Organisation, *scopes: str) -> str:
    _token, plaintext = await create_token(world.session, actor=Actor.system("test"), org=org, name="GRC tool",
                                           scopes=list(scopes), days=None)
    await world.commit()
    return plaintext


async def get_view(client: httpx.AsyncClient, org: Organisation, plaintext: str) -> httpx.Response:
    return await client.get(PATH.format(org_id=org.id), headers=bearer(plaintext))


async def test_the_view_matches_its_documented_schema_and_says_what_applies(world, engine, client):
    """Acme objected to Vectorly (resolved: accommodated), Hostwerk and Oldbox were deemed authorised; the next
    version adds Kestrel (awaiting an answer) and removes Oldbox (for information)."""
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example", days=45)
    published = utcnow() - PAST - dt.timedelta(days=10)
    await publish(world, legal, "Hostwerk GmbH", "Oldbox AG", now=published)
    hostwerk = next(r for r in await rows_of(engine, acme.org) if r.entry_name == "Hostwerk GmbH")
    await publish(world, legal, entry_data("Vectorly Inc.", locations="US", transfer_mechanism="dpf",
                                           parent_id=str(hostwerk.entry_id)), now=published + dt.timedelta(days=1))
    vectorly = next(r for r in await rows_of(engine, acme.org) if r.entry_name == "Vectorly Inc.")
    objection = await responses.object_to(world.session, actor=acme.privacy_actor, org=acme.org,
                                          authorisation_id=str(vectorly.id), reason="No US transfers.",
                                          now=published + dt.timedelta(days=2))
    await world.commit()
    await responses.resolve(world.session, actor=legal, org=acme.org, objection_id=str(objection.id),
                            resolution="accommodated", note="Your data stays with Hostwerk.", base_url=BASE_URL)
    await world.commit()
    async with make_sessionmaker(engine)() as session:
        await responses.apply_deadlines(session)
        await session.commit()
    oldbox = next(r for r in await rows_of(engine, acme.org) if r.entry_name == "Oldbox AG")
    await publishing.draft_removal(world.session, actor=legal, entry_id=str(oldbox.entry_id))
    await publish(world, legal, "Kestrel GmbH")
    plaintext = await token_for(world, acme.org, "subprocessors:read")

    response = await get_view(client, acme.org, plaintext)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    document = (await client.get("/api/v1/openapi.json")).json()
    schema = document["paths"][PATH]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    check_schema(document, schema, response.json())
    body = response.json()
    assert body["organisation"] == {"id": str(acme.org.id), "name": "Acme Logistics"}
    assert body["agreement"] == {"reference": "DPA 2025", "signed_on": "2025-01-10", "authorisation": "general",
                                 "notice_days": 45, "notice_days_is_default": False}
    assert body["version"]["number"] == 2
    entries = {e["name"]: e for e in body["entries"]}
    assert [e["name"] for e in body["entries"]] == ["Hostwerk GmbH", "Vectorly Inc.", "Oldbox AG"]  # the chain
    assert (entries["Vectorly Inc."]["depth"], entries["Vectorly Inc."]["parent_id"]) == (1, str(hostwerk.entry_id))
    assert entries["Hostwerk GmbH"]["in_force"] and entries["Oldbox AG"]["in_force"]
    assert not entries["Vectorly Inc."]["in_force"]
    [held] = entries["Vectorly Inc."]["held_back"]
    assert (held["version"], held["kind"], held["state"]) == (2, "added", "objected")
    assert "resolved: Accommodated" in held["reason"]

    changes = {(c["version"], c["name"], c["kind"]): c for c in body["changes"]}
    assert [c["version"] for c in body["changes"]] == [3, 3, 2, 1, 1]
    kestrel = changes[(3, "Kestrel GmbH", "added")]
    assert kestrel["authorisation"]["state"] == "pending" and kestrel["authorisation"]["open_for_answer"]
    assert kestrel["authorisation"]["notice_days"] == 45 and not kestrel["in_effect"]
    assert kestrel["legal_entity"] == "Kestrel GmbH (legal entity)" and kestrel["locations"] == ["DE"]
    assert changes[(3, "Oldbox AG", "removed")]["authorisation"] is None
    objected = changes[(2, "Vectorly Inc.", "added")]["authorisation"]
    assert (objected["state"], objected["in_force"], objected["decided_by"]) == ("objected", False,
                                                                               "pia@acme.example")
    [lodged] = objected["objections"]
    assert (lodged["reason"], lodged["open"], lodged["resolution"], lodged["resolution_note"]) == (
        "No US transfers.", False, "accommodated", "Your data stays with Hostwerk.")
    deemed = changes[(1, "Hostwerk GmbH", "added")]["authorisation"]
    assert (deemed["state"], deemed["decided_by"]) == ("deemed_authorised", "the portal, at the deadline")


async def test_the_scope_is_required(world, client):
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    plaintext = await token_for(world, acme.org, "org:read", "notices:read")

    response = await get_view(client, acme.org, plaintext)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert "subprocessors:read" in response.json()["error"]["message"]
    assert (await client.get(PATH.format(org_id=acme.org.id))).status_code == 401


async def test_a_client_token_reads_only_its_own_organisation(world, engine, client):
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    globex = await client_with_agreement(world, "Globex Secretive Corp", "gina@globex.example")
    await publish(world, legal, "Vectorly Inc.")
    [globex_row] = await rows_of(engine, globex.org)
    await responses.object_to(world.session, actor=globex.privacy_actor, org=globex.org,
                              authorisation_id=str(globex_row.id), reason="Globex's secret grounds")
    await world.commit()
    plaintext = await token_for(world, acme.org, "subprocessors:read")
    vendor = await world.vendor()

    for org_id in (globex.org.id, vendor.id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        response = await client.get(PATH.format(org_id=org_id), headers=bearer(plaintext))
        assert response.status_code == 404, org_id
        assert response.json()["error"]["code"] == "not_found"
        for secret in ("Globex", str(globex.org.id), str(globex_row.id), "secret grounds"):
            assert secret not in response.text

    own = await get_view(client, acme.org, plaintext)
    assert own.status_code == 200
    [change] = own.json()["changes"]
    assert change["authorisation"]["state"] == "pending" and change["authorisation"]["objections"] == []
    assert "Globex" not in own.text and str(globex_row.id) not in own.text


async def test_a_vendor_token_reads_any_client(world, engine, client):
    legal = await vendor_legal(world)
    globex = await client_with_agreement(world, "Globex Corp", "gina@globex.example", authorisation="specific")
    await publish(world, legal, "Vectorly Inc.")
    [row] = await rows_of(engine, globex.org)
    vendor = await world.vendor()
    plaintext = await token_for(world, vendor, "subprocessors:read")

    response = await get_view(client, globex.org, plaintext)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["organisation"]["name"] == "Globex Corp"
    assert body["agreement"]["authorisation"] == "specific" and body["agreement"]["notice_days_is_default"]
    [change] = body["changes"]
    assert (change["name"], change["authorisation"]["id"]) == ("Vectorly Inc.", str(row.id))
    assert (await get_view(client, vendor, plaintext)).status_code == 404  # the vendor's own list is public
