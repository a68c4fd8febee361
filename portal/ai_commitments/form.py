"""The vendor's form for a commitments version, read into the document ``document.clean`` checks.

Field names are the document's paths (``data_classes.prompts.training_use``), so every refusal lands beside its
field. Providers are typed one a line, ``Name | retention days or none | abuse-monitoring days | zdr or no``; up to
``FEATURE_SLOTS`` AI features are offered, and a feature left without a name is not part of the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import FormData

from portal.ai_commitments.document import DATA_CLASSES, GOVERNANCE_FIELDS, TEXT_FIELDS

FEATURE_SLOTS = 3
FEATURE_TEXT = ("name", "role", "upstream_provider", "provider_documentation", "training_summary", "disclosure",
                "marking", *GOVERNANCE_FIELDS)
FEATURE_FLAGS = ("interacts_with_persons", "generates_content", "high_risk")


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _number(raw: str) -> Any:
    """Whole days as an int, 'none' as itself, anything else as typed (the document check refuses it)."""
    if raw.isdigit():
        return int(raw)
    return "none" if raw.casefold() == "none" else raw


def _providers(raw: str) -> list[dict[str, Any]]:
    providers = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        parts = [part.strip() for part in line.split("|")] + ["", "", "", ""]
        providers.append({"name": parts[0], "retention_days": _number(parts[1]),
                          "abuse_monitoring_days": _number(parts[2] or "0"),
                          "zero_data_retention": parts[3].casefold() in {"zdr", "yes", "true"}})
    return providers


def read(form: FormData) -> dict[str, Any]:
    """The raw document the form describes."""
    classes: dict[str, Any] = {}
    for key in DATA_CLASSES:
        at = f"data_classes.{key}"
        classes[key] = {
            "training_use": _text(form, f"{at}.training_use"), "training_models": _text(form, f"{at}.training_models"),
            "vendor_retention_days": _number(_text(form, f"{at}.vendor_retention_days")),
            "providers": _providers(_text(form, f"{at}.providers")),
            "locations": [c for c in _text(form, f"{at}.locations").replace(";", ",").split(",") if c.strip()],
            **{name: _text(form, f"{at}.{name}") for name in TEXT_FIELDS}}
    features = []
    for index in range(FEATURE_SLOTS):
        at = f"features.{index}"
        if not _text(form, f"{at}.name"):
            continue
        feature: dict[str, Any] = {name: _text(form, f"{at}.{name}") for name in FEATURE_TEXT}
        feature |= {flag: bool(_text(form, f"{at}.{flag}")) for flag in FEATURE_FLAGS}
        feature["log_retention_days"] = _number(_text(form, f"{at}.log_retention_days"))
        features.append(feature)
    return {"data_classes": classes, "features": features}


def values(document: Mapping[str, Any]) -> dict[str, str]:
    """The form's values for a stored document (to start a new draft from the version in force)."""
    out: dict[str, str] = {}
    for key, data in document.get("data_classes", {}).items():
        at = f"data_classes.{key}"
        out |= {f"{at}.{name}": str(data.get(name, "")) for name in ("training_use", "training_models",
                                                                     "vendor_retention_days", *TEXT_FIELDS)}
        out[f"{at}.locations"] = ", ".join(data.get("locations", []))
        out[f"{at}.providers"] = "\n".join(
            f"{p['name']} | {p['retention_days']} | {p['abuse_monitoring_days']} | "
            f"{'zdr' if p['zero_data_retention'] else 'no'}" for p in data.get("providers", []))
    for index, feature in enumerate(document.get("features", [])[:FEATURE_SLOTS]):
        at = f"features.{index}"
        out |= {f"{at}.{name}": str(feature.get(name) or "") for name in (*FEATURE_TEXT, "log_retention_days")}
        out |= {f"{at}.{flag}": "yes" if feature.get(flag) else "" for flag in FEATURE_FLAGS}
    return out


def form_values(form: FormData) -> dict[str, str]:
    """What was typed, to show again beside the refusals."""
    return {name: value for name, value in form.items() if isinstance(value, str)}
