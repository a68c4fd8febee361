"""The JSON Schema (Draft 2020-12) of ``/ai-commitments.json``: what readers can rely on, and what the tests validate
every answer against. Objects hold exactly the fields listed; a new field means a new schema version.

A version's ``document`` is the stored commitments document as ``document.clean`` shapes it (legal requirements 54,
58, 59): every data class declared, each with its training use, retentions, model providers, locations and
controls; each AI feature with its AI Act statements (the data-governance fields only on a high-risk feature).
"""

from __future__ import annotations

from typing import Any

from portal.ai_commitments.document import DATA_CLASSES, GOVERNANCE_FIELDS, MIN_HIGH_RISK_LOG_DAYS, TRAINING_USES

_TEXT: dict[str, Any] = {"type": "string"}
_SHA256: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_DATE: dict[str, Any] = {"type": "string", "format": "date"}
_URI: dict[str, Any] = {"type": "string", "format": "uri"}
_DAYS: dict[str, Any] = {"type": "integer", "minimum": 0}
_DAYS_OR_NONE: dict[str, Any] = {"anyOf": [_DAYS, {"const": "none"}],
                                 "description": "Whole days the data is kept, or 'none': not kept at all."}


def _object(properties: dict[str, Any], description: str, *, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "description": description,
            "required": [name for name in properties if name not in optional],
            "additionalProperties": False, "properties": properties}


_PROVIDER = _object({
    "name": {**_TEXT, "description": "A registered sub-processor (by name or legal entity)."},
    "retention_days": _DAYS_OR_NONE,
    "abuse_monitoring_days": {**_DAYS, "description": "Days the provider keeps abuse-monitoring logs (0: none)."},
    "zero_data_retention": {"type": "boolean"},
}, "A model provider the data class is sent to, with its own retention.")

_DATA_CLASS = _object({
    "training_use": {"enum": list(TRAINING_USES), "description": "none, customer_opt_in or customer_opt_out."},
    "training_models": {**_TEXT, "description": "The models it may train; empty when the training use is none."},
    "vendor_retention_days": _DAYS_OR_NONE,
    "providers": {"type": "array", "items": _PROVIDER},
    "locations": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                  "description": "ISO 3166-1 alpha-2 codes of the processing countries."},
    "human_review": _TEXT, "isolation": _TEXT, "ownership": _TEXT, "client_controls": _TEXT,
}, "What is done with one class of client data.")

_FEATURE = {
    **_object({
        "name": _TEXT,
        "role": {**_TEXT, "description": "The vendor's role under the AI Act (provider or deployer)."},
        "upstream_provider": {**_TEXT, "description": "The general-purpose AI model provider; may be empty."},
        "provider_documentation": {**_TEXT, "description": "Link to the provider's downstream documentation."},
        "training_summary": {**_TEXT, "description": "Link to or text of the training-content summary."},
        "interacts_with_persons": {"type": "boolean"},
        "disclosure": {**_TEXT, "description": "How people are told they deal with an AI (Art. 50(1)); empty when "
                                               "it does not interact with people."},
        "generates_content": {"type": "boolean"},
        "marking": {**_TEXT, "description": "How generated outputs are marked (Art. 50(2)); empty when it "
                                            "generates none."},
        "high_risk": {"type": "boolean"},
        **{name: _TEXT for name in GOVERNANCE_FIELDS},
        "log_retention_days": {"type": "integer", "minimum": MIN_HIGH_RISK_LOG_DAYS},
    }, "An AI feature and its AI Act statements.", optional=(*GOVERNANCE_FIELDS, "log_retention_days")),
    "if": {"properties": {"high_risk": {"const": True}}},
    "then": {"required": [*GOVERNANCE_FIELDS, "log_retention_days"],
             "description": "A high-risk feature states its data governance (Art. 10(2)) and keeps logs at least "
                            f"{MIN_HIGH_RISK_LOG_DAYS} days."},
}

DOCUMENT_SCHEMA: dict[str, Any] = _object({
    "data_classes": _object({key: {**_DATA_CLASS, "description": label} for key, label in DATA_CLASSES.items()},
                            "Every class of client data, each declared."),
    "features": {"type": "array", "items": _FEATURE},
}, "The commitments of one version, as stored and hashed.")

_VERSION = _object({
    "number": {"type": "integer", "minimum": 1},
    "effective_date": _DATE,
    "reason": {**_TEXT, "description": "Why the commitments changed, as published."},
    "expanding": {"type": "boolean", "description": "Whether it widens what the previous version allowed: it then "
                                                    "applies to a client only once that client accepts it."},
    "expanding_reasons": {"type": "array", "items": _TEXT, "description": "What widens, in words."},
    "sha256": {**_SHA256, "description": "See how_to_verify."},
    "previous_sha256": {**_SHA256, "description": "The previous version's sha256; 64 zeros for version 1."},
    "document": DOCUMENT_SCHEMA,
    "url": {**_URI, "description": "The version's public page, with its changes against the previous one."},
}, "A published version of the AI commitments.")

PUBLIC_COMMITMENTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:dpa-portal:schema:ai-commitments:1",
    "title": "Public AI data-use commitments",
    **_object({
        "vendor": _TEXT,
        "as_of": {**_DATE, "description": "The day the answer is for (UTC)."},
        "latest_version": {"type": "integer", "minimum": 0, "description": "The newest published version (0: none)."},
        "in_force": {"anyOf": [_VERSION, {"type": "null"}],
                     "description": "The version in force that day; null before the first takes effect."},
        "history": {"type": "array", "items": _VERSION,
                    "description": "Every published version in chain order, oldest first."},
        "how_to_verify": _TEXT,
        "links": _object({"html": _URI}, "The same commitments as a page."),
    }, "The AI data-use commitments in force on a day, and every published version."),
}
