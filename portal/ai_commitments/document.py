"""What one version of the AI data-use commitments says, how it is checked, and how two versions compare.

Invariants (legal requirements 54, 56, 58, 59):
- every customer data class is declared with a training use (``none``, ``customer_opt_in``, ``customer_opt_out``),
  the models it may train (unless ``none``), a retention at the vendor in whole days or ``none``, the retention at
  each model provider (abuse-monitoring logs included) and its zero-data-retention status, human review, isolation,
  ownership, processing locations (ISO 3166 codes) and the client's controls; a missing value is a field error;
- a feature that talks to people states how it discloses that it is an AI (AI Act Art. 50(1)); one that generates
  content states how outputs are marked (Art. 50(2)); a high-risk feature states its data governance (Art. 10(2))
  and keeps logs for at least 180 days;
- every model provider named must be a registered sub-processor (checked by the ledger against the registry);
- a change is *expanding* when any data class gains training use, a longer retention, a new provider or loses zero
  data retention, and *narrowing* otherwise (``classify``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.errors import InvalidInput
from portal.subprocessors.geography import is_country

DATA_CLASSES: dict[str, str] = {
    "prompts": "Prompts and inputs",
    "outputs": "Model outputs",
    "files": "Uploaded files",
    "embeddings": "Embeddings and indexes",
    "fine_tuning": "Fine-tuning data",
    "feedback": "Feedback",
    "telemetry": "Telemetry and metadata",
}
TRAINING_USES: dict[str, str] = {
    "none": "None: not used to train or improve any model",
    "customer_opt_in": "Only if the client opts in",
    "customer_opt_out": "Unless the client opts out",
}
TRAINING_RANK = {"none": 0, "customer_opt_in": 1, "customer_opt_out": 2}  # more use ranks higher
TEXT_FIELDS = ("human_review", "isolation", "ownership", "client_controls")
MIN_HIGH_RISK_LOG_DAYS = 180
GOVERNANCE_FIELDS = ("data_origin", "original_purpose", "preparation", "bias_checks")


@dataclass(frozen=True)
class Classification:
    expanding: bool
    reasons: tuple[str, ...]  # what widens, in words; empty for a narrowing or neutral change


def _days(value: Any, where: str, errors: dict[str, str], *, allow_none: bool = True) -> int | None:
    if allow_none and value == "none":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        errors[where] = "Enter a whole number of days" + (" or 'none'." if allow_none else ".")
        return None
    return value


def _text(value: Any, where: str, errors: dict[str, str], label: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        errors[where] = f"{label} is required."
    return text


def _data_class(key: str, raw: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    where = f"data_classes.{key}"
    use = raw.get("training_use")
    if use not in TRAINING_USES:
        errors[f"{where}.training_use"] = "Choose the training use: none, customer opt-in or customer opt-out."
    models = raw.get("training_models", "")
    if use in ("customer_opt_in", "customer_opt_out"):
        models = _text(models, f"{where}.training_models", errors, "Which models it may train")
    retention = raw.get("vendor_retention_days")
    if retention != "none":
        _days(retention, f"{where}.vendor_retention_days", errors, allow_none=False)
    providers = []
    for index, provider in enumerate(raw.get("providers") or []):
        at = f"{where}.providers.{index}"
        name = _text(provider.get("name"), f"{at}.name", errors, "The provider's name")
        days = provider.get("retention_days")
        if days != "none":
            _days(days, f"{at}.retention_days", errors, allow_none=False)
        _days(provider.get("abuse_monitoring_days"), f"{at}.abuse_monitoring_days", errors, allow_none=False)
        providers.append({"name": name, "retention_days": days,
                          "abuse_monitoring_days": provider.get("abuse_monitoring_days"),
                          "zero_data_retention": bool(provider.get("zero_data_retention"))})
    locations = [str(code).strip().upper() for code in raw.get("locations") or []]
    if not locations or not all(is_country(code) for code in locations):
        errors[f"{where}.locations"] = "List the processing countries as ISO 3166 codes, e.g. DE, FR."
    cleaned = {"training_use": use, "training_models": models if isinstance(models, str) else "",
               "vendor_retention_days": retention, "providers": providers, "locations": locations}
    for name in TEXT_FIELDS:
        cleaned[name] = _text(raw.get(name), f"{where}.{name}", errors, name.replace("_", " ").capitalize())
    return cleaned


def _feature(index: int, raw: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    at = f"features.{index}"
    feature: dict[str, Any] = {"name": _text(raw.get("name"), f"{at}.name", errors, "The feature's name"),
                               "role": _text(raw.get("role"), f"{at}.role", errors, "The vendor's role (provider "
                                                                                    "or deployer)"),
                               "upstream_provider": str(raw.get("upstream_provider") or "").strip(),
                               "provider_documentation": str(raw.get("provider_documentation") or "").strip(),
                               "training_summary": str(raw.get("training_summary") or "").strip()}
    for flag, detail, label in (("interacts_with_persons", "disclosure", "How people are told they deal with an AI"),
                                ("generates_content", "marking", "How generated outputs are marked")):
        feature[flag] = bool(raw.get(flag))
        feature[detail] = _text(raw.get(detail), f"{at}.{detail}", errors, label) if feature[flag] else ""
    feature["high_risk"] = bool(raw.get("high_risk"))
    if feature["high_risk"]:
        for name in GOVERNANCE_FIELDS:
            feature[name] = _text(raw.get(name), f"{at}.{name}", errors, name.replace("_", " ").capitalize())
        days = _days(raw.get("log_retention_days"), f"{at}.log_retention_days", errors, allow_none=False)
        if days is not None and days < MIN_HIGH_RISK_LOG_DAYS:
            errors[f"{at}.log_retention_days"] = (f"A high-risk feature keeps its logs at least "
                                                  f"{MIN_HIGH_RISK_LOG_DAYS} days (AI Act Art. 19(1), 26(6)).")
        feature["log_retention_days"] = days
    return feature


def clean(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The version document to store, or ``InvalidInput`` naming every field that needs attention."""
    errors: dict[str, str] = {}
    classes = raw.get("data_classes") or {}
    declared: dict[str, dict[str, Any]] = {}
    for key in DATA_CLASSES:
        if key not in classes:
            errors[f"data_classes.{key}"] = f"{DATA_CLASSES[key]} must be declared."
            continue
        declared[key] = _data_class(key, classes[key], errors)
    document: dict[str, Any] = {"data_classes": declared,
                                "features": [_feature(i, f, errors) for i, f in enumerate(raw.get("features") or [])]}
    if errors:
        raise InvalidInput(f"Nothing was saved: {len(errors)} field(s) need attention.", fields=errors)
    return document


def providers_named(document: Mapping[str, Any]) -> set[str]:
    names = {p["name"] for data in document["data_classes"].values() for p in data["providers"]}
    names |= {f["upstream_provider"] for f in document["features"] if f.get("upstream_provider")}
    return names


def classify(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Classification:
    """Whether ``new`` widens what ``old`` allowed (then each client must accept it before it applies to them)."""
    if old is None:
        return Classification(False, ())
    reasons = []
    for key, label in DATA_CLASSES.items():
        before, after = old["data_classes"][key], new["data_classes"][key]
        if TRAINING_RANK[after["training_use"]] > TRAINING_RANK[before["training_use"]]:
            reasons.append(f"{label}: training use widens to '{TRAINING_USES[after['training_use']]}'")
        if _kept(after["vendor_retention_days"]) > _kept(before["vendor_retention_days"]):
            reasons.append(f"{label}: kept longer at the vendor")
        old_providers = {p["name"]: p for p in before["providers"]}
        for provider in after["providers"]:
            earlier = old_providers.get(provider["name"])
            if earlier is None:
                reasons.append(f"{label}: new model provider {provider['name']}")
            elif (_kept(provider["retention_days"]) > _kept(earlier["retention_days"])
                  or provider["abuse_monitoring_days"] > earlier["abuse_monitoring_days"]
                  or (earlier["zero_data_retention"] and not provider["zero_data_retention"])):
                reasons.append(f"{label}: {provider['name']} keeps the data longer")
    return Classification(bool(reasons), tuple(reasons))


def _kept(days: Any) -> int:
    """Days a store keeps data: ``none`` (not kept) is zero."""
    return 0 if days == "none" else int(days)
