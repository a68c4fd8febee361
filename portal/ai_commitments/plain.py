"""The AI commitments in plain words, for the public pages: each data class, each AI feature, and a version's
changes as before/after rows.

Rules:
- a retention of ``none`` reads "Not kept"; a number reads in days; a provider with zero data retention says so, and
  its abuse-monitoring logs are shown whatever its retention (0 days: none kept);
- countries are named, with their ISO code in brackets (``geography.country_name``);
- a change to a list of named items (model providers, AI features) is shown item by item, matched by name: an item
  added, one removed, or each field of it that differs; every other change is its path and two values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from portal.ai_commitments.document import DATA_CLASSES, GOVERNANCE_FIELDS, TRAINING_USES
from portal.ai_commitments.ledger import field_changes
from portal.subprocessors.geography import country_name

LABELS: dict[str, str] = {
    "data_classes": "Data classes", "training_use": "Training use", "training_models": "Models it may train",
    "vendor_retention_days": "Kept at the vendor", "providers": "Model providers", "name": "Name",
    "retention_days": "Kept at the provider", "abuse_monitoring_days": "Abuse-monitoring logs",
    "zero_data_retention": "Zero data retention", "locations": "Processing locations", "human_review": "Human review",
    "isolation": "Isolation from other clients", "ownership": "Ownership", "client_controls": "The client's controls",
    "features": "AI features", "role": "The vendor's role", "upstream_provider": "Upstream model provider",
    "provider_documentation": "Provider's documentation", "training_summary": "Training-content summary",
    "interacts_with_persons": "Interacts with people", "disclosure": "How people are told it is an AI",
    "generates_content": "Generates content", "marking": "How generated outputs are marked",
    "high_risk": "High-risk", "data_origin": "Origin of the data", "original_purpose": "Original purpose of collection",
    "preparation": "Preparation of the data", "bias_checks": "Bias checks", "log_retention_days": "Logs kept",
}
ITEMS = {"providers": "Model provider", "features": "AI feature"}  # lists whose items are matched by name
SEPARATOR = " \u203a "  # a single right-pointing angle quotation mark


def days(value: Any) -> str:
    """``none`` is "Not kept"; a number of days reads as such."""
    if value == "none":
        return "Not kept"
    return f"{value} day" if value == 1 else f"{value} days"


def abuse_logs(value: Any) -> str:
    return "None kept" if value == 0 else f"Kept {days(value)}"


def countries(codes: Sequence[str]) -> str:
    return ", ".join(f"{country_name(code)} ({code})" for code in codes)


def training(data: Mapping[str, Any]) -> str:
    label = TRAINING_USES.get(str(data.get("training_use")), str(data.get("training_use")))
    models = str(data.get("training_models") or "")
    return f"{label}. Models it may train: {models}" if models else label


# ---------------------------------------------------------------- a version, in words

@dataclass(frozen=True)
class ProviderTerms:
    name: str
    retention: str
    abuse_logs: str
    zero_data_retention: bool


@dataclass(frozen=True)
class DataClassTerms:
    key: str
    label: str
    training: str
    vendor_retention: str
    providers: list[ProviderTerms]
    human_review: str
    isolation: str
    ownership: str
    locations: str
    client_controls: str


@dataclass(frozen=True)
class FeatureTerms:
    name: str
    role: str
    upstream_provider: str
    documentation_url: str  # only an http(s) address becomes a link
    documentation: str
    training_summary: str
    disclosure: str  # empty unless it interacts with people (AI Act Art. 50(1))
    marking: str  # empty unless it generates content (Art. 50(2))
    high_risk: bool
    governance: list[tuple[str, str]]  # Art. 10(2) fields, when high-risk
    log_retention: str  # when high-risk (Art. 19(1), 26(6))


@dataclass(frozen=True)
class Terms:
    data_classes: list[DataClassTerms]
    features: list[FeatureTerms]


def _provider(raw: Mapping[str, Any]) -> ProviderTerms:
    zdr = bool(raw.get("zero_data_retention"))
    kept = raw.get("retention_days")
    retention = "Zero data retention" if zdr else ("Not kept" if kept == "none" else f"Kept {days(kept)}")
    return ProviderTerms(str(raw.get("name") or ""), retention, abuse_logs(raw.get("abuse_monitoring_days")), zdr)


def _feature(raw: Mapping[str, Any]) -> FeatureTerms:
    documentation = str(raw.get("provider_documentation") or "")
    high_risk = bool(raw.get("high_risk"))
    return FeatureTerms(
        name=str(raw.get("name") or ""), role=str(raw.get("role") or ""),
        upstream_provider=str(raw.get("upstream_provider") or ""),
        documentation_url=documentation if documentation.startswith(("https://", "http://")) else "",
        documentation=documentation, training_summary=str(raw.get("training_summary") or ""),
        disclosure=str(raw.get("disclosure") or "") if raw.get("interacts_with_persons") else "",
        marking=str(raw.get("marking") or "") if raw.get("generates_content") else "",
        high_risk=high_risk,
        governance=[(LABELS[name], str(raw.get(name) or "")) for name in GOVERNANCE_FIELDS] if high_risk else [],
        log_retention=days(raw.get("log_retention_days")) if high_risk else "")


def terms(document: Mapping[str, Any]) -> Terms:
    """Every data class (in the declared order) and every AI feature of a version document, in words."""
    classes = []
    for key, label in DATA_CLASSES.items():
        data = document["data_classes"][key]
        classes.append(DataClassTerms(
            key=key, label=label, training=training(data), vendor_retention=days(data["vendor_retention_days"]),
            providers=[_provider(p) for p in data["providers"]], human_review=data["human_review"],
            isolation=data["isolation"], ownership=data["ownership"], locations=countries(data["locations"]),
            client_controls=data["client_controls"]))
    return Terms(classes, [_feature(f) for f in document.get("features") or []])


# ---------------------------------------------------------------- a version's changes, in words

@dataclass(frozen=True)
class Change:
    what: str  # e.g. ["Telemetry and metadata", "Kept at the vendor"] joined by SEPARATOR
    before: str
    after: str


def value(field: str, raw: Any) -> str:
    """One stored value as a reader sees it, by the field it belongs to."""
    if raw is None:
        return "(not set)"
    if isinstance(raw, bool):
        return "Yes" if raw else "No"
    if field == "training_use":
        return TRAINING_USES.get(str(raw), str(raw))
    if field in ("vendor_retention_days", "retention_days", "log_retention_days"):
        return days(raw)
    if field == "abuse_monitoring_days":
        return abuse_logs(raw)
    if field == "locations" and isinstance(raw, list):
        return countries([str(code) for code in raw]) or "(none)"
    if isinstance(raw, Mapping):
        return "; ".join(f"{LABELS.get(k, k)}: {value(k, v)}" for k, v in raw.items() if v not in ("", None))
    if isinstance(raw, list):
        return " | ".join(value(field, item) for item in raw) or "(none)"
    return str(raw) if raw != "" else "(empty)"


def _label(segment: str) -> str:
    return DATA_CLASSES.get(segment) or LABELS.get(segment) or segment.replace("_", " ").capitalize()


def _named(items: Any) -> dict[str, Mapping[str, Any]] | None:
    """``items`` by name when it is a list of named objects with distinct names, else None."""
    if not isinstance(items, list) or not all(isinstance(i, Mapping) and isinstance(i.get("name"), str)
                                              for i in items):
        return None
    by_name = {str(i["name"]): i for i in items}
    return by_name if len(by_name) == len(items) else None


def _rows(where: list[str], field: str, before: Any, after: Any) -> list[Change]:
    old, new = (_named(before), _named(after)) if field in ITEMS else (None, None)
    if old is None or new is None:
        return [Change(SEPARATOR.join(where), value(field, before), value(field, after))]
    rows: list[Change] = []
    for name in [*old, *(n for n in new if n not in old)]:
        at = [*where[:-1], f"{ITEMS[field]} {name}"]
        if name not in new:
            rows.append(Change(SEPARATOR.join(at), value(field, old[name]), "Removed"))
        elif name not in old:
            rows.append(Change(SEPARATOR.join(at), "Not listed", value(field, new[name])))
        else:
            for path, change in field_changes(old[name], new[name]).items():
                sub = path.split(".")
                rows += _rows([*at, *map(_label, sub)], sub[-1], change["before"], change["after"])
    return rows


def changes(stored: Mapping[str, Mapping[str, Any]]) -> list[Change]:
    """A version's stored field changes (path -> before/after, see ``ledger.field_changes``) as readable rows."""
    rows: list[Change] = []
    for path, change in stored.items():
        segments = path.split(".")
        where = [_label(s) for s in segments if s != "data_classes"]
        rows += _rows(where, segments[-1], change.get("before"), change.get("after"))
    return rows
