"""A complete, valid commitments document, and a registered model provider to name in it."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from portal.actors import Actor
from portal.ai_commitments.document import DATA_CLASSES
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
