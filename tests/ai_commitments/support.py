"""A complete, valid commitments document, a registered model provider to name in it, and publishing a version
with its notices."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from portal.actors import Actor
from portal.ai_commitments import ledger, rollout
from portal.ai_commitments.document import DATA_CLASSES
from portal.ai_commitments.models import CommitmentVersion
from portal.subprocessors import publishing
from tests.conftest import World
from tests.subprocessors.support import entry_data

SYSTEM = Actor.system("test")
PROVIDER = "Mistral AI SAS"


def data_class(**overrides: Any) -> dict[str, Any]:
    return {"training_use": "none", "training_models": "", "vendor_retention_days": 30,
            "providers": [{"name": PROVIDER, "retention_days": "none", "abuse_monitoring_days": 0,
                           "zero_data_retention": True}],
            "locations": ["DE", "FR"], "human_review": "Only at the client's written request for support",
            "isolation": "Each client's data in its own encrypted store", "ownership": "The client owns inputs and "
            "outputs", "client_controls": "Retention setting, training opt-in, admin audit log", **overrides}


def commitments(**class_overrides: dict[str, Any]) -> dict[str, Any]:
    classes = {key: data_class(**class_overrides.get(key, {})) for key in DATA_CLASSES}
    return {"data_classes": classes, "features": [{
        "name": "Document assistant", "role": "deployer", "upstream_provider": PROVIDER,
        "provider_documentation": "https://docs.mistral.example", "training_summary": "",
        "interacts_with_persons": True, "disclosure": "A label 'AI assistant' on every answer",
        "generates_content": True, "marking": "C2PA metadata on generated files", "high_risk": False}]}


def changed(document: dict[str, Any], data_class_key: str, **values: Any) -> dict[str, Any]:
    out = copy.deepcopy(document)
    out["data_classes"][data_class_key].update(values)
    return out


async def register_provider(world: World, name: str = PROVIDER) -> None:
    """``name`` on a published sub-processor list (as its legal entity)."""
    raw = {**entry_data("Mistral AI"), "legal_entity": name, "ai_model_provider": "on"}
    await publishing.draft_entry(world.session, actor=SYSTEM, raw=raw)
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    await publishing.publish(world.session, actor=SYSTEM, effective_date=(earlier + dt.timedelta(days=40)).date()
                             .isoformat(), summary="", default_notice_days=30, base_url="http://testserver",
                             now=earlier)
    await world.commit()


DAYS_AGO_40 = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0) - dt.timedelta(days=40)


async def publish_version(world: World, raw: dict[str, Any], *, effective: dt.date | None = None,
                          now: dt.datetime | None = None, reason: str = "Update") -> CommitmentVersion:
    """Draft and publish ``raw`` with its notices, as the vendor's page does; ``now`` back-dates the publishing
    (history), ``effective`` defaults to the day of publishing."""
    draft = await ledger.save_draft(world.session, actor=SYSTEM, raw=raw)
    day = effective or (now or dt.datetime.now(dt.UTC)).date()
    version = await ledger.publish(world.session, actor=SYSTEM, draft_id=str(draft.id), effective_date=day.isoformat(),
                                   reason=reason, now=now)
    await rollout.announce(world.session, actor=SYSTEM, version=version, settings=world.settings)
    await world.commit()
    return version
