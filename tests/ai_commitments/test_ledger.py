"""The commitments ledger: complete versions only, registered providers only, immutable hash-chained versions, and
the classification of expanding and narrowing changes (legal requirements 53-59)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.ai_commitments import document, ledger
from portal.ai_commitments.models import CommitmentVersion, ImmutableVersion
from portal.errors import InvalidInput
from tests.ai_commitments.support import SYSTEM, changed, commitments, register_provider

TODAY = dt.date.today()


@pytest.mark.parametrize(("path", "value", "field"), [
    (("prompts", "training_use"), None, "data_classes.prompts.training_use"),
    (("outputs", "vendor_retention_days"), None, "data_classes.outputs.vendor_retention_days"),
    (("files", "vendor_retention_days"), -3, "data_classes.files.vendor_retention_days"),
    (("telemetry", "locations"), ["XX"], "data_classes.telemetry.locations"),
    (("feedback", "training_use"), "customer_opt_in", "data_classes.feedback.training_models"),
])
def test_a_version_missing_a_value_is_refused_naming_the_field(path, value, field):
    raw = changed(commitments(), path[0], **{path[1]: value})
    with pytest.raises(InvalidInput) as refused:
        document.clean(raw)
    assert field in refused.value.fields  # requirement 54


def test_every_data_class_must_be_declared():
    raw = commitments()
    del raw["data_classes"]["embeddings"]
    with pytest.raises(InvalidInput) as refused:
        document.clean(raw)
    assert "data_classes.embeddings" in refused.value.fields


@pytest.mark.parametrize(("overrides", "field"), [
    ({"interacts_with_persons": True, "disclosure": ""}, "features.0.disclosure"),  # requirement 58
    ({"generates_content": True, "marking": " "}, "features.0.marking"),
    ({"high_risk": True, "data_origin": "Client documents", "original_purpose": "Contract work",
      "preparation": "De-duplication", "bias_checks": "Quarterly", "log_retention_days": 90},
     "features.0.log_retention_days"),  # requirement 59
    ({"high_risk": True, "log_retention_days": 365}, "features.0.data_origin"),
])
def test_ai_act_fields_are_required_where_they_apply(overrides, field):
    raw = commitments()
    raw["features"][0].update(overrides)
    with pytest.raises(InvalidInput) as refused:
        document.clean(raw)
    assert field in refused.value.fields


async def test_a_model_provider_must_be_a_registered_sub_processor(world, db):
    with pytest.raises(InvalidInput, match="registered sub-processor"):
        await ledger.save_draft(db, actor=SYSTEM, raw=commitments())  # requirement 56
    assert (await db.execute(select(CommitmentVersion))).first() is None
    await register_provider(world)
    assert (await ledger.save_draft(db, actor=SYSTEM, raw=commitments())).status.value == "draft"


async def test_a_version_cannot_take_effect_before_it_is_published(world, db):
    """No promise is ever recorded as in effect on a day before anyone could read it."""
    await register_provider(world)
    draft = await ledger.save_draft(db, actor=SYSTEM, raw=commitments())
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    with pytest.raises(InvalidInput) as refused:
        await ledger.publish(db, actor=SYSTEM, draft_id=str(draft.id), effective_date=yesterday.isoformat(),
                             reason="Back-dated")
    assert "before it is published" in refused.value.fields["effective_date"]
    assert await ledger.latest(db) is None and draft.status.value == "draft"


async def test_published_versions_chain_their_hashes_and_never_change(world, db):
    await register_provider(world)
    first = await ledger.save_draft(db, actor=SYSTEM, raw=commitments())
    await ledger.publish(db, actor=SYSTEM, draft_id=str(first.id), effective_date=TODAY.isoformat(),
                         reason="Our first published commitments")
    second = await ledger.save_draft(db, actor=SYSTEM, raw=changed(commitments(), "telemetry",
                                                                    vendor_retention_days=14))
    await ledger.publish(db, actor=SYSTEM, draft_id=str(second.id), effective_date=TODAY.isoformat(),
                         reason="Telemetry kept 14 days instead of 30")
    await world.commit()
    assert (first.number, second.number) == (1, 2)  # requirement 53
    assert first.previous_sha256 == ledger.GENESIS and second.previous_sha256 == first.sha256
    assert second.sha256 == ledger.chain_hash(2, TODAY, second.reason, second.document, first.sha256)
    assert second.changes == {"data_classes.telemetry.vendor_retention_days": {"before": 30, "after": 14}}
    assert (second.expanding, second.expanding_reasons) == (False, [])
    first_id = first.id
    second.reason = "rewritten later"
    with pytest.raises(ImmutableVersion):
        await db.flush()
    await db.rollback()
    await db.delete(await db.get(CommitmentVersion, first_id))
    with pytest.raises(ImmutableVersion):
        await db.flush()
    await db.rollback()


def test_widening_changes_are_expanding_and_narrowing_ones_are_not():
    base = document.clean(commitments())
    cases = [
        (changed(base, "prompts", training_use="customer_opt_out", training_models="Our own models"), True),
        (changed(base, "outputs", vendor_retention_days=365), True),
        (changed(base, "files", providers=[*base["data_classes"]["files"]["providers"],
                                            {"name": "New Provider Inc.", "retention_days": 0,
                                             "abuse_monitoring_days": 0, "zero_data_retention": True}]), True),
        (changed(base, "feedback", providers=[{**base["data_classes"]["feedback"]["providers"][0],
                                               "zero_data_retention": False}]), True),
        (changed(base, "telemetry", vendor_retention_days=7), False),
        (changed(base, "prompts", vendor_retention_days="none"), False),
    ]
    for new, expanding in cases:
        assert document.classify(base, new).expanding is expanding, new  # requirement 57
