"""The JSON Schema (Draft 2020-12) of ``/subprocessors.json``: what the README documents and the tests validate
every answer against. Objects hold exactly the fields listed; a new field means a new schema version."""

from __future__ import annotations

from typing import Any

from portal.subprocessors.entries import FIELD_NAMES
from portal.subprocessors.geography import TRANSFER_MECHANISMS
from portal.subprocessors.models import ChangeKind

_TEXT: dict[str, Any] = {"type": "string"}
_TEXTS: dict[str, Any] = {"type": "array", "items": _TEXT}
_CODES: dict[str, Any] = {"type": "array", "items": {"type": "string", "pattern": "^[A-Z]{2}$"},
                          "description": "ISO 3166-1 alpha-2 country codes."}
_SHA256: dict[str, Any] = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_URI: dict[str, Any] = {"type": "string", "format": "uri"}


def _object(properties: dict[str, Any], description: str) -> dict[str, Any]:
    return {"type": "object", "description": description, "required": list(properties),
            "additionalProperties": False, "properties": properties}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


_COUNTRY = _object({
    "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
    "name": _TEXT,
    "transfer_basis": {**_TEXT, "description": "What lets data go there: 'EEA', 'Adequacy decision: ...', or the "
                                               "entry's transfer mechanism."},
}, "A location with its name and transfer basis.")

_VERSION = _object({
    "version": {"type": "integer", "minimum": 1},
    "announced_at": {"type": "string", "format": "date-time"},
    "effective_date": {"type": "string", "format": "date"},
    "sha256": {**_SHA256, "description": "SHA-256 of the version's canonical JSON document."},
    "url": _URI,
}, "A published version of the list.")

_ENTRY_FIELDS: dict[str, Any] = {name: _TEXT for name in FIELD_NAMES}
_ENTRY_FIELDS.update({
    "data_categories": _TEXTS, "locations": _CODES, "ai_model_provider": {"type": "boolean"},
    "transfer_mechanism": {"enum": ["", *TRANSFER_MECHANISMS],
                           "description": "The Chapter V transfer tool's key; empty when none is needed."},
})

_ENTRY = _object({
    "id": _TEXT,
    **_ENTRY_FIELDS,
    "transfer_mechanism_name": _TEXT,
    "countries": {"type": "array", "items": _COUNTRY},
    "depth": {"type": "integer", "minimum": 0, "description": "0 at the top of the chain; a sub-sub-processor "
                                                             "follows the entry that engages it."},
    "parent_name": {**_TEXT, "description": "The entry that engages it; empty at the top of the chain."},
    "listed_since": {**_nullable({"type": "integer", "minimum": 1}),
                     "description": "The version that added it (or brought it in as a replacement)."},
}, "One sub-processor: every register field, plus country names and transfer bases.")

_CHANGE = _object({
    "kind": {"enum": [k.value for k in ChangeKind]},
    "entry_id": _TEXT, "name": _TEXT, "legal_entity": _TEXT, "address": _TEXT, "contact": _TEXT, "purpose": _TEXT,
    "processing": _TEXT, "data_categories": _TEXTS, "locations": _CODES,
    "countries": {"type": "array", "items": _COUNTRY},
    "transfer_mechanism_name": _TEXT,
    "ai_model_provider": {"type": "boolean"},
    "changed_fields": {**_TEXTS, "description": "For 'changed': the labels of the fields that differ."},
    "replaces": {**_nullable(_TEXT), "description": "For 'replaced': the name of the entry it replaces."},
    "replaces_entry_id": _nullable(_TEXT),
}, "One change a version makes, as its notice told it.")

PUBLIC_LIST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:dpa-portal:schema:subprocessors-list:1",
    "title": "Public sub-processor list",
    **_object({
        "vendor": _TEXT,
        "as_of": {"type": "string", "format": "date", "description": "The day the list is for (UTC)."},
        "version": {**_nullable({"type": "integer", "minimum": 1}),
                    "description": "The version in force that day; null before the first takes effect."},
        "sha256": _nullable(_SHA256),
        "announced_at": _nullable({"type": "string", "format": "date-time"}),
        "effective_date": _nullable({"type": "string", "format": "date"}),
        "url": _nullable(_URI),
        "latest_version": {"type": "integer", "minimum": 0, "description": "The newest published version (0: none)."},
        "entries": {"type": "array", "items": _ENTRY},
        "upcoming": {"type": "array", "description": "Versions announced by that day and not yet in force, oldest "
                                                     "first, with their changes.",
                     "items": {**_VERSION, "required": [*_VERSION["required"], "summary", "changes"],
                               "properties": {**_VERSION["properties"], "summary": _TEXT,
                                              "changes": {"type": "array", "items": _CHANGE}}}},
        "history": {"type": "array", "items": _VERSION, "description": "Every published version, newest first."},
        "links": _object({"html": _URI, "atom": _URI, "csv": _URI}, "The same list in other forms."),
    }, "The sub-processors in force on a day, the changes announced to come, and every published version."),
}
