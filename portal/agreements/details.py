"""The agreement details a client's admin fills in: Annex I (the client as a party), Annex II (the description of the
processing), the contacts for notices and, where the vendor allows it, the negotiated terms.

Invariants:
- every Annex II field is required (legal requirement 1) and so are both contacts (requirement 8: notices need
  someone to go to); a refused form names each field that needs attention and saves nothing;
- special categories of data (Art. 9) or criminal-offence data (Art. 10) need their restrictions and safeguards
  stated (requirement 3); without them the annex says so explicitly instead of leaving a gap;
- the stored details hold exactly the catalog names (``portal.dpa.fields``) the document is rendered with, plus
  ``processing.has_sensitive``;
- negotiated terms are whole numbers within bounds and are only taken when the portal allows negotiation.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.agreements.models import Authorisation
from portal.errors import InvalidInput

MAX_NOTICE_DAYS = 365
MAX_BREACH_HOURS = 72  # a processor's first notice must leave the controller time for its own 72 hours
NO_SENSITIVE = "None: no special categories of personal data (Art. 9 GDPR) or data on criminal convictions and " \
               "offences (Art. 10 GDPR) are processed"
NO_SAFEGUARDS = "Not applicable: no such data is processed"
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class DetailField:
    name: str  # the catalog name it fills
    label: str
    group: str
    help: str = ""
    max_length: int = 300
    long: bool = False  # a textarea
    required: bool = True


PARTY = "The client as a party (Annex I)"
AGREEMENT = "The agreement"
PROCESSING = "Description of the processing (Annex II)"
CONTACTS = "Who receives notices"

FIELDS: tuple[DetailField, ...] = (
    DetailField("client.name", "Registered legal name", PARTY),
    DetailField("client.address", "Registered address", PARTY, "One line, e.g. 'Am Sandtorkai 50, 20457 Hamburg, "
                "Germany'.", 500),
    DetailField("client.registration_number", "Company register and number", PARTY,
                "e.g. 'Amtsgericht Hamburg HRB 178342'."),
    DetailField("client.contact_name", "Contact person for this agreement", PARTY),
    DetailField("client.contact_position", "Contact person's position", PARTY),
    DetailField("client.contact_email", "Contact person's email", PARTY, max_length=320),
    DetailField("client.dpo", "Data protection officer", PARTY, "Name and contact, or who acts for data protection "
                "where none is appointed.", 500),
    DetailField("agreement.effective_date", "Effective date", AGREEMENT, "YYYY-MM-DD; the day the agreement takes "
                "effect (it can be before signature, e.g. the start of the service).", 10),
    DetailField("agreement.service_agreement", "Main agreement", AGREEMENT, "The agreement under which the services "
                "are provided, e.g. 'Platform Subscription Agreement of 16 June 2025'.", 500),
    DetailField("processing.subject_matter", "Subject matter", PROCESSING, max_length=2000, long=True),
    DetailField("processing.data_subjects", "Categories of data subjects", PROCESSING, max_length=2000, long=True),
    DetailField("processing.personal_data", "Categories of personal data", PROCESSING, max_length=2000, long=True),
    DetailField("processing.sensitive_data", "Special categories or criminal-offence data", PROCESSING,
                "Which such data is processed (only when the box above is ticked).", 2000, True, False),
    DetailField("processing.sensitive_safeguards", "Restrictions and safeguards for that data", PROCESSING,
                "Required when such data is processed, e.g. access limits, no human review.", 2000, True, False),
    DetailField("processing.nature", "Nature of the processing", PROCESSING, "The operations performed.", 2000, True),
    DetailField("processing.purposes", "Purposes", PROCESSING, max_length=2000, long=True),
    DetailField("processing.duration", "Duration", PROCESSING, max_length=1000, long=True),
    DetailField("processing.frequency", "Frequency", PROCESSING, "One-off or continuous.", 500),
    DetailField("processing.retention", "Retention period, or the criteria that set it", PROCESSING,
                max_length=1000, long=True),
    DetailField("contacts.subprocessor_changes", "Contacts for sub-processor changes", CONTACTS,
                "Name, position and email of whoever receives sub-processor notices and may object.", 1000),
    DetailField("contacts.incidents", "Contacts for security incidents and personal data breaches", CONTACTS,
                "Name, position, email and phone; breach notices go to these people.", 1000),
)
SENSITIVE_FLAG = "processing.has_sensitive"
TERM_NAMES = ("notice_days", "breach_target_hours", "subprocessor_authorisation")
_BY_NAME = {f.name: f for f in FIELDS}


@dataclass(frozen=True)
class Terms:
    notice_days: int | None
    breach_target_hours: int | None
    authorisation: Authorisation


def groups() -> dict[str, list[DetailField]]:
    found: dict[str, list[DetailField]] = {}
    for spec in FIELDS:
        found.setdefault(spec.group, []).append(spec)
    return found


def form_values(details: Mapping[str, Any]) -> dict[str, str]:
    """What the form shows for stored details (the explicit 'none' texts are not shown as typed values)."""
    values = {spec.name: str(details.get(spec.name, "")) for spec in FIELDS}
    values[SENSITIVE_FLAG] = "yes" if details.get(SENSITIVE_FLAG) else ""
    if not values[SENSITIVE_FLAG]:
        values["processing.sensitive_data"] = values["processing.sensitive_safeguards"] = ""
    return values


def clean(raw: Mapping[str, str]) -> dict[str, Any]:
    """The details to store, or ``InvalidInput`` naming every field that needs attention."""
    errors: dict[str, str] = {}
    details: dict[str, Any] = {}
    sensitive = bool(raw.get(SENSITIVE_FLAG, "").strip())
    for spec in FIELDS:
        value = raw.get(spec.name, "").strip()
        required = spec.required or (sensitive and spec.name.startswith("processing.sensitive"))
        if required and not value:
            errors[spec.name] = f"{spec.label} is required."
        elif len(value) > spec.max_length:
            errors[spec.name] = f"{spec.label} is longer than {spec.max_length} characters."
        details[spec.name] = value
    if not sensitive:
        details["processing.sensitive_data"], details["processing.sensitive_safeguards"] = NO_SENSITIVE, NO_SAFEGUARDS
    details[SENSITIVE_FLAG] = sensitive
    _check_formats(details, errors)
    if errors:
        raise InvalidInput(_summary(errors), fields=errors)
    return details


def _check_formats(details: dict[str, Any], errors: dict[str, str]) -> None:
    email = "client.contact_email"
    if email not in errors and not _EMAIL.fullmatch(details[email]):
        errors[email] = "Enter an email address, e.g. ada@acme.example."
    day = "agreement.effective_date"
    if day not in errors:
        try:
            dt.date.fromisoformat(details[day])
        except ValueError:
            errors[day] = "Enter the date as YYYY-MM-DD."


def _summary(errors: Mapping[str, str]) -> str:
    labels = [_BY_NAME[name].label if name in _BY_NAME else name.replace("_", " ") for name in errors]
    return f"Nothing was saved. Please check: {', '.join(labels)}."


def clean_terms(raw: Mapping[str, str], *, allowed: bool, current: Terms) -> Terms:
    """The negotiated terms from the form when negotiation is allowed; otherwise the current (vendor) terms."""
    if not allowed:
        return current
    errors: dict[str, str] = {}
    notice_days = _whole(raw.get("notice_days", ""), 1, MAX_NOTICE_DAYS, "notice_days", errors)
    hours = _whole(raw.get("breach_target_hours", ""), 1, MAX_BREACH_HOURS, "breach_target_hours", errors)
    try:
        authorisation = Authorisation(raw.get("subprocessor_authorisation", ""))
    except ValueError:
        errors["subprocessor_authorisation"] = "Choose general or specific authorisation."
        authorisation = current.authorisation
    if errors:
        raise InvalidInput(_summary(errors), fields=errors)
    return Terms(notice_days, hours, authorisation)


def _whole(raw: str, low: int, high: int, name: str, errors: dict[str, str]) -> int | None:
    text = raw.strip()
    if not text:
        return None  # the vendor's default
    if not text.isdigit() or not low <= int(text) <= high:
        errors[name] = f"Enter a whole number from {low} to {high}, or leave it empty for the default."
        return None
    return int(text)
