"""Register fields of a sub-processor entry (legal requirement 28): what a draft must hold, the ISO country codes,
the transfer tool outside the EEA and the adequate countries, contact email, the chain, and strict JSON bodies.

Every refusal names the field, and nothing is drafted."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.errors import InvalidInput
from portal.subprocessors import publishing, registry
from portal.subprocessors.entries import FIELDS
from portal.subprocessors.models import DraftChange, DraftKind
from tests.subprocessors.support import entry_data, publish, vendor_legal

REQUIRED = [f.name for f in FIELDS if f.required]


async def _drafts(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(DraftChange)))


async def _refused(world, raw, **kwargs) -> InvalidInput:
    """Draft ``raw`` as vendor legal, expecting a refusal that stores nothing; returns the error."""
    actor = await vendor_legal(world)
    with pytest.raises(InvalidInput) as refused:
        await publishing.draft_entry(world.session, actor=actor, raw=raw, **kwargs)
    await world.session.rollback()
    assert await _drafts(world.session) == 0
    return refused.value


async def _drafted(world, raw, **kwargs) -> dict:
    actor = await vendor_legal(world)
    draft = await publishing.draft_entry(world.session, actor=actor, raw=raw, **kwargs)
    await world.commit()
    [stored] = (await world.session.execute(select(DraftChange))).scalars().all()
    assert stored.id == draft.id
    return stored.data


def test_the_register_fields_of_requirement_28_are_required():
    assert set(REQUIRED) == {"name", "legal_entity", "address", "contact_name", "contact_email", "purpose",
                             "processing", "data_categories", "locations"}


@pytest.mark.parametrize("field", REQUIRED)
async def test_each_required_field_missing_is_refused_by_name(world, field):
    error = await _refused(world, {**entry_data(), field: "  "})

    assert field in error.fields
    assert "required" in error.fields[field]


async def test_every_wrong_field_is_named_at_once(world):
    raw = {**entry_data(), "name": "", "address": "", "locations": "", "contact_email": "nobody"}
    error = await _refused(world, raw)

    assert {"name", "address", "locations", "contact_email"} <= set(error.fields)
    assert "more below" in error.message


async def test_a_complete_entry_is_drafted_as_an_addition(world, db):
    data = await _drafted(world, entry_data("Hostwerk GmbH", data_categories="Account data\nPrompts, Account data"))

    [draft] = (await db.execute(select(DraftChange))).scalars().all()
    assert draft.kind is DraftKind.ADD
    assert data["name"] == "Hostwerk GmbH"
    assert data["locations"] == ["DE"]
    assert data["data_categories"] == ["Account data", "Prompts"]  # split on lines and commas, duplicates once
    assert data["ai_model_provider"] is False


@pytest.mark.parametrize("locations", ["XX", "UK", "DEU", "D1", "EU"])
async def test_a_location_that_is_not_an_iso_country_code_is_refused(world, locations):
    error = await _refused(world, entry_data(locations=f"DE, {locations}"))

    assert "ISO 3166" in error.fields["locations"]
    assert locations.upper() in error.fields["locations"]


async def test_lower_case_country_codes_are_accepted_and_upper_cased(world):
    data = await _drafted(world, entry_data(locations="de, ie , us", transfer_mechanism="dpf"))

    assert data["locations"] == ["DE", "IE", "US"]


async def test_a_country_given_twice_in_different_case_is_stored_once(world):
    data = await _drafted(world, entry_data(locations="de, DE, fr"))

    assert data["locations"] == ["DE", "FR"]


@pytest.mark.parametrize("locations", ["DE", "FR, NO, IS, LI", "CH", "JP", "GB", "DE, CH, JP, GB"])
async def test_eea_and_adequate_countries_need_no_transfer_mechanism(world, locations):
    data = await _drafted(world, entry_data(locations=locations, transfer_mechanism=""))

    assert data["transfer_mechanism"] == ""
    assert data["locations"] == [code.strip() for code in locations.split(",")]


@pytest.mark.parametrize("country", ["US", "IN"])
async def test_a_country_without_adequacy_needs_a_transfer_mechanism_and_is_named(world, country):
    error = await _refused(world, entry_data(locations=f"DE, {country}", transfer_mechanism=""))

    assert country in error.fields["transfer_mechanism"]
    assert "DE" not in error.fields["transfer_mechanism"]
    assert "outside the EEA" in error.fields["transfer_mechanism"]


async def test_every_country_needing_a_transfer_tool_is_named(world):
    error = await _refused(world, entry_data(locations="US, IN, JP", transfer_mechanism=""))

    assert "US" in error.fields["transfer_mechanism"] and "IN" in error.fields["transfer_mechanism"]
    assert "JP" not in error.fields["transfer_mechanism"]


async def test_the_us_with_the_data_privacy_framework_is_accepted(world):
    data = await _drafted(world, entry_data(locations="US", transfer_mechanism="dpf"))

    assert data["locations"] == ["US"]
    assert data["transfer_mechanism"] == "dpf"


@pytest.mark.parametrize("mechanism", ["magic", "SCC", "DPF"])
async def test_an_unknown_transfer_mechanism_is_refused(world, mechanism):
    error = await _refused(world, entry_data(locations="DE", transfer_mechanism=mechanism))

    assert error.fields == {"transfer_mechanism": "Choose one of the listed transfer mechanisms."}


@pytest.mark.parametrize("email", ["privacy", "privacy@", "@example.com", "pri vacy@example.com", "a@b"])
async def test_a_bad_contact_email_is_refused(world, email):
    error = await _refused(world, entry_data(contact_email=email))

    assert list(error.fields) == ["contact_email"]
    assert "email address" in error.fields["contact_email"]


async def test_a_field_longer_than_its_limit_is_refused(world):
    error = await _refused(world, entry_data(purpose="p" * 301))

    assert "300 characters" in error.fields["purpose"]


async def test_a_bad_flow_down_date_is_refused(world):
    error = await _refused(world, entry_data(flow_down_date="15.01.2025"))

    assert error.fields == {"flow_down_date": "Enter the date as YYYY-MM-DD."}


# ---------------------------------------------------------------- the chain (parent entries)

async def test_the_parent_must_be_a_known_entry(world):
    error = await _refused(world, entry_data(parent_id="7b0a6c8e-1d4f-4c55-9a51-2f3c0c7d1a10"))

    assert "another entry" in error.fields["parent_id"]


async def test_a_published_entry_can_be_the_parent_of_a_new_one(world, db):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Hostwerk GmbH")
    [parent] = registry.entries_of(version)

    child = await publishing.draft_entry(db, actor=actor, raw=entry_data("Racks Ltd", parent_id=parent["id"]))
    await world.commit()

    assert child.data["parent_id"] == parent["id"]


async def test_a_drafted_entry_can_be_the_parent_of_another_draft(world, db):
    actor = await vendor_legal(world)
    parent = await publishing.draft_entry(db, actor=actor, raw=entry_data("Hostwerk GmbH"))
    child = await publishing.draft_entry(db, actor=actor, raw=entry_data("Racks Ltd",
                                                                          parent_id=str(parent.entry_id)))
    await world.commit()

    assert child.data["parent_id"] == str(parent.entry_id)
    assert await _drafts(db) == 2


async def test_an_entry_cannot_be_its_own_parent(world, db):
    actor = await vendor_legal(world)
    version = await publish(world, actor, "Hostwerk GmbH")
    [entry] = registry.entries_of(version)

    with pytest.raises(InvalidInput) as refused:
        await publishing.draft_entry(db, actor=actor, entry_id=entry["id"],
                                     raw=entry_data("Hostwerk GmbH", parent_id=entry["id"]))
    await db.rollback()

    assert "parent_id" in refused.value.fields
    assert await _drafts(db) == 0


async def test_the_chain_cannot_become_a_loop(world, db):
    """A parent that is (through its own parents) engaged by the entry would make the chain circular: neither entry
    would have a top, and the controller's nested view (legal requirement 29) could not show them."""
    actor = await vendor_legal(world)
    first = await publish(world, actor, "Hostwerk GmbH")
    [top] = registry.entries_of(first)
    second = await publish(world, actor, entry_data("Racks Ltd", parent_id=top["id"]))
    child = next(e for e in registry.entries_of(second) if e["name"] == "Racks Ltd")

    with pytest.raises(InvalidInput) as refused:
        await publishing.draft_entry(db, actor=actor, entry_id=top["id"],
                                     raw=entry_data("Hostwerk GmbH", parent_id=child["id"]))
    await db.rollback()

    assert "parent_id" in refused.value.fields
    assert await _drafts(db) == 0


# ---------------------------------------------------------------- JSON bodies (strict) and forms

async def test_strict_mode_refuses_unknown_fields(world):
    error = await _refused(world, {**entry_data(), "colour": "blue", "id": "chosen-by-client"}, strict=True)

    assert error.fields == {"colour": "Unknown field.", "id": "Unknown field."}


async def test_forms_may_carry_other_fields(world):
    data = await _drafted(world, {**entry_data(), "csrf_token": "x", "colour": "blue"})

    assert "colour" not in data and "csrf_token" not in data


async def test_json_lists_and_booleans_are_accepted(world):
    data = await _drafted(world, {**entry_data(), "locations": ["de", "US"], "transfer_mechanism": "scc_module_3",
                                  "data_categories": ["Prompts", "Outputs"], "ai_model_provider": True},
                          strict=True)

    assert data["locations"] == ["DE", "US"]
    assert data["data_categories"] == ["Prompts", "Outputs"]
    assert data["ai_model_provider"] is True
