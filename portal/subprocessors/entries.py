"""One sub-processor entry: its fields, their validation, the canonical form versions are hashed over, and the
difference between two lists.

An entry is a plain dict (it lives inside version documents and drafts); ``FIELDS`` says what each key means.
Legal requirement 28 decides what is required; requirement 30 (a flow-down contract before an entry is active)
is checked when the list is published, so a draft can be saved while the contract is still being signed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from portal.errors import InvalidInput
from portal.subprocessors.geography import TRANSFER_MECHANISMS, country_name, is_country, needs_transfer_tool

Entry = dict[str, Any]


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    required: bool = False
    max_length: int = 200
    help: str = ""


FIELDS: tuple[Field, ...] = (
    Field("name", "Name", True, help="The name clients know it by, e.g. 'Amazon Web Services'."),
    Field("legal_entity", "Legal entity", True, help="The contracting entity, e.g. 'Amazon Web Services EMEA SARL'."),
    Field("address", "Registered address", True, 500),
    Field("contact_name", "Contact person", True),
    Field("contact_position", "Contact's position"),
    Field("contact_email", "Contact email", True, 320),
    Field("purpose", "Purpose", True, 300, "One line, e.g. 'Cloud hosting of the production platform'."),
    Field("processing", "Description of the processing", True, 4000,
          "Nature, subject matter and duration, and what this sub-processor is responsible for (and not)."),
    Field("data_categories", "Categories of personal data", True, 1000, "One per line or comma-separated."),
    Field("locations", "Locations (ISO 3166 country codes)", True, 300, "e.g. 'DE, IE, US'."),
    Field("transfer_mechanism", "Transfer mechanism", False, 40,
          "Required for a location outside the EEA without an adequacy decision."),
    Field("transfer_details", "Transfer details", False, 1000, "e.g. date of the clauses, transfer impact assessment."),
    Field("parent_id", "Engaged by (the chain)", False, 40, "Set for a sub-processor of another sub-processor."),
    Field("ai_model_provider", "AI model provider", False, 5),
    Field("flow_down_reference", "Flow-down contract", False, 200,
          "The contract imposing the same data protection obligations (GDPR Art. 28(4)); required to publish."),
    Field("flow_down_date", "Flow-down contract date", False, 10, "YYYY-MM-DD"),
    Field("services", "Services it applies to", False, 300, "Empty: every service."),
)
FIELD_NAMES = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}
_LISTS = ("data_categories", "locations")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value).strip()


def _split(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else re.split(r"[,\n;]", str(value or ""))
    seen: list[str] = []
    for item in (str(i).strip() for i in items):
        if item and item not in seen:
            seen.append(item)
    return seen


def clean_entry(raw: Mapping[str, Any], *, entry_id: str, known_ids: Iterable[str], strict: bool = False) -> Entry:
    """The entry ``raw`` describes (a form or a JSON body), or InvalidInput naming every field that is wrong;
    ``strict`` (JSON bodies) also refuses fields that do not exist."""
    errors: dict[str, str] = {}
    entry: Entry = {"id": entry_id}
    for spec in FIELDS:
        value = raw.get(spec.name)
        if spec.name in _LISTS:
            entry[spec.name] = _split(value)
            text = ", ".join(entry[spec.name])
        elif spec.name == "ai_model_provider":
            entry[spec.name] = value in (True, "on", "true", "1", "yes")
            continue
        else:
            entry[spec.name] = text = _text(value)
        if spec.required and not text:
            errors[spec.name] = f"{spec.label} is required."
        elif len(text) > spec.max_length:
            errors[spec.name] = f"{spec.label} is longer than {spec.max_length} characters."
    entry["locations"] = list(dict.fromkeys(code.upper() for code in entry["locations"]))  # "de, DE": once
    unknown = [code for code in entry["locations"] if not is_country(code)]
    if unknown and "locations" not in errors:
        errors["locations"] = (f"Not an ISO 3166 country code: {', '.join(c[:10] for c in unknown[:3])}. "
                               "Use two letters, e.g. DE or US.")
    if entry["contact_email"] and not _EMAIL.match(entry["contact_email"]) and "contact_email" not in errors:
        errors["contact_email"] = "Enter an email address such as privacy@example.com."
    mechanism = entry["transfer_mechanism"]
    if mechanism and mechanism not in TRANSFER_MECHANISMS:
        errors["transfer_mechanism"] = "Choose one of the listed transfer mechanisms."
    outside = [code for code in entry["locations"] if is_country(code) and needs_transfer_tool(code)]
    if outside and not mechanism and "transfer_mechanism" not in errors:
        errors["transfer_mechanism"] = (f"{', '.join(outside)} is outside the EEA without an adequacy decision: name "
                                        "the transfer mechanism.")
    if entry["parent_id"] and (entry["parent_id"] == entry_id or entry["parent_id"] not in set(known_ids)):
        errors["parent_id"] = "Choose another entry of the list (or none)."
    if entry["flow_down_date"]:
        try:
            dt.date.fromisoformat(entry["flow_down_date"])
        except ValueError:
            errors["flow_down_date"] = "Enter the date as YYYY-MM-DD."
    for name in sorted(set(raw) - set(FIELD_NAMES)) if strict else ():
        errors[name[:40]] = "Unknown field."
    if errors:
        first = next(iter(errors.values()))
        more = f" ({len(errors) - 1} more below)" if len(errors) > 1 else ""
        raise InvalidInput(f"{first}{more}", fields=errors)
    return entry


def publish_problems(entry: Entry) -> dict[str, str]:
    """What keeps ``entry`` from being published as active (legal requirement 30: the flow-down contract)."""
    problems: dict[str, str] = {}
    if not entry.get("flow_down_reference"):
        problems["flow_down_reference"] = "Record the flow-down contract before publishing (GDPR Art. 28(4))."
    if not entry.get("flow_down_date"):
        problems["flow_down_date"] = "Record the date of the flow-down contract."
    return problems


# ---------------------------------------------------------------- versions: canonical form and differences

def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """The bytes a version's SHA-256 is taken over: sorted keys, no insignificant whitespace, UTF-8."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def sha256_of(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(document)).hexdigest()


def sorted_entries(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e["name"].lower(), e["id"]))


@dataclass(frozen=True)
class EntryDiff:
    kind: str  # added, removed, changed
    entry: Entry  # the new entry (the old one for removals)
    before: Entry | None
    fields: tuple[str, ...]  # the fields that differ, for changes


def diff_entries(old: Iterable[Entry], new: Iterable[Entry]) -> list[EntryDiff]:
    """How ``new`` differs from ``old``, entry by entry (matched by id), by name."""
    before = {e["id"]: e for e in old}
    after = {e["id"]: e for e in new}
    diffs: list[EntryDiff] = []
    for entry_id, entry in after.items():
        previous = before.get(entry_id)
        if previous is None:
            diffs.append(EntryDiff("added", entry, None, ()))
        else:
            fields = tuple(name for name in FIELD_NAMES if previous.get(name) != entry.get(name))
            if fields:
                diffs.append(EntryDiff("changed", entry, previous, fields))
    diffs += [EntryDiff("removed", entry, entry, ()) for entry_id, entry in before.items() if entry_id not in after]
    return sorted(diffs, key=lambda d: (d.entry["name"].lower(), d.kind))


def field_label(name: str) -> str:
    return _BY_NAME[name].label if name in _BY_NAME else name


def notice_item(kind: str, entry: Entry, *, replaces: Entry | None = None, fields: Iterable[str] = (),
                engaged_by: str = "") -> dict[str, Any]:
    """One change as notices, feeds and the version record describe it: the register fields a client needs to
    decide whether to object (legal requirement 35), the kind, what it replaces, and ``engaged_by``, the name of
    the entry that engages it when it sits further down the chain (requirement 29)."""
    item = {
        "kind": kind, "entry_id": entry["id"], "name": entry["name"], "legal_entity": entry["legal_entity"],
        "address": entry["address"], "contact": ", ".join(p for p in (
            entry["contact_name"], entry.get("contact_position", ""), entry["contact_email"]) if p),
        "purpose": entry["purpose"], "processing": entry["processing"],
        "data_categories": list(entry["data_categories"]), "locations": list(entry["locations"]),
        "location_names": [f"{country_name(code)} ({code})" for code in entry["locations"]],
        "transfer_mechanism": TRANSFER_MECHANISMS.get(entry.get("transfer_mechanism", ""), ""),
        "transfer_details": entry.get("transfer_details", ""), "engaged_by": engaged_by,
        "ai_model_provider": bool(entry.get("ai_model_provider")),
        "changed_fields": [field_label(f) for f in fields],
    }
    if replaces is not None:
        item["replaces"] = replaces["name"]
        item["replaces_entry_id"] = replaces["id"]
    return item
