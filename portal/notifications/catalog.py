"""The catalog of notice types: who receives each, on which topic, and one function per type building its content.

Invariants:
- every notice type has a spec here and templates in ``templates/email/<type>/{subject.txt,body.txt,body.html}``;
- the content functions return plain JSON (strings, numbers, lists, dicts), so a notice can be stored, rendered by
  the worker later and sent as a webhook payload without the objects it was made from;
- the webhook payload of every type is an object with the common fields in ``PAYLOAD_BASE_SCHEMA`` plus the
  type's own fields; ``payload_schema(type)`` is the documented JSON schema (README and OpenAPI components).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from portal.accounts.roles import Role


class Topic(enum.StrEnum):
    SUBPROCESSORS = "subprocessors"
    DPA = "dpa"
    BREACHES = "breaches"
    AI_COMMITMENTS = "ai_commitments"
    COMPLIANCE = "compliance"

    @property
    def label(self) -> str:
        return TOPIC_LABELS[self]


TOPIC_LABELS = {
    Topic.SUBPROCESSORS: "Sub-processor changes and objections",
    Topic.DPA: "Data processing agreement: new versions and signatures",
    Topic.BREACHES: "Personal-data breach notices",
    Topic.AI_COMMITMENTS: "AI data-use commitments",
    Topic.COMPLIANCE: "Compliance notices (sub-processor failures, authority requests)",
}


class NoticeType(enum.StrEnum):
    SUBSCRIPTION_CONFIRMATION = "subscription_confirmation"
    SUBPROCESSOR_CHANGE = "subprocessor_change"
    DPA_VERSION = "dpa_version"
    SIGNATURE_REQUEST = "signature_request"
    AGREEMENT_EXECUTED = "agreement_executed"
    BREACH_NOTICE = "breach_notice"
    BREACH_UPDATE = "breach_update"
    AI_COMMITMENT_CHANGE = "ai_commitment_change"
    OBJECTION_RESOLVED = "objection_resolved"
    SUBPROCESSOR_FAILURE = "subprocessor_failure"
    COMPLIANCE_INABILITY = "compliance_inability"
    AUTHORITY_REQUEST = "authority_request"
    WEBHOOK_TEST = "webhook_test"


@dataclass(frozen=True)
class NoticeSpec:
    type: NoticeType
    event: str  # the webhook ``type``, ``a.b`` as the Standard Webhooks spec recommends
    topic: Topic
    roles: frozenset[Role]  # client members with any of these roles receive it
    public: bool = False  # public subscribers of the topic receive it too
    fields: dict[str, Any] = field(default_factory=dict)  # JSON schema properties of the type's own payload


_TEXT = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_URL = {"type": "string", "format": "uri"}
_OPT_DATE = {"type": ["string", "null"], "format": "date"}
_LIST = {"type": "array", "items": _TEXT}
# One change in a sub-processor notice: the register fields a client needs to decide whether to object (legal
# requirement 35); ``portal.subprocessors.entries.notice_item`` builds it.
_CHANGES = {"type": "array", "items": {"type": "object", "required": ["kind", "name"], "properties": {
    "kind": {"enum": ["added", "replaced", "changed", "removed"]}, "entry_id": _TEXT, "name": _TEXT,
    "legal_entity": _TEXT, "address": _TEXT, "contact": _TEXT, "purpose": _TEXT, "processing": _TEXT,
    "data_categories": _LIST, "locations": {**_LIST, "description": "ISO 3166-1 alpha-2 country codes"},
    "location_names": {**_LIST, "description": "The same countries by name, e.g. `Germany (DE)`."},
    "transfer_mechanism": _TEXT, "transfer_details": _TEXT, "ai_model_provider": {"type": "boolean"},
    "engaged_by": {**_TEXT, "description": "For a sub-processor further down the chain: who engages it."},
    "changed_fields": {**_LIST, "description": "For `changed`: the fields that differ."},
    "replaces": {**_TEXT, "description": "For `replaced`: the name of the entry it replaces."},
    "replaces_entry_id": _TEXT}}}

_PRIVACY = frozenset({Role.PRIVACY_CONTACT})
_SECURITY = frozenset({Role.SECURITY_CONTACT})
_SIGNING = frozenset({Role.ADMIN, Role.SIGNATORY})
_PRIVACY_AND_ADMIN = frozenset({Role.PRIVACY_CONTACT, Role.ADMIN})

SPECS: dict[NoticeType, NoticeSpec] = {spec.type: spec for spec in [
    NoticeSpec(NoticeType.SUBSCRIPTION_CONFIRMATION, "subscription.confirmation", Topic.SUBPROCESSORS,
               frozenset(), fields={"topics": {"type": "array", "items": _TEXT}}),
    NoticeSpec(NoticeType.SUBPROCESSOR_CHANGE, "subprocessors.changed", Topic.SUBPROCESSORS, _PRIVACY, public=True,
               fields={"version": {"type": "integer"}, "effective_date": _DATE, "objection_deadline": _OPT_DATE,
                       "changes": _CHANGES}),
    NoticeSpec(NoticeType.DPA_VERSION, "dpa.version_published", Topic.DPA, _SIGNING,
               fields={"version": _TEXT, "document_sha256": _TEXT, "summary": _TEXT}),
    NoticeSpec(NoticeType.SIGNATURE_REQUEST, "dpa.signature_requested", Topic.DPA, _SIGNING,
               fields={"version": _TEXT, "due_date": _OPT_DATE, "reference": _TEXT, "signatory": _TEXT}),
    NoticeSpec(NoticeType.AGREEMENT_EXECUTED, "dpa.agreement_executed", Topic.DPA, _SIGNING,
               fields={"version": _TEXT, "document_sha256": _TEXT, "executed_at": _TEXT, "reference": _TEXT}),
    NoticeSpec(NoticeType.BREACH_NOTICE, "breach.notified", Topic.BREACHES, _SECURITY,
               fields={"incident": _TEXT, "aware_at": _TEXT, "nature": _TEXT, "categories": _TEXT,
                       "approximate_numbers": _TEXT, "likely_consequences": _TEXT, "measures": _TEXT,
                       "contact_point": _TEXT, "phase": {"enum": ["initial", "interim", "final"]},
                       "approximate_subjects": _TEXT, "approximate_records": _TEXT,
                       "notified_at": {**_TEXT, "format": "date-time"},
                       "reference_sa_deadline": {**_TEXT, "format": "date-time", "description": "notified_at plus 72 "
                                                 "hours: a reference for the client's own deadline towards its "
                                                 "supervisory authority. The client determines when it became "
                                                 "aware of the breach."},
                       "changed_fields": {**_LIST, "description": "Fields that differ from the previous notice."},
                       "art34_draft": {**_TEXT, "description": "Optional draft for informing data subjects."}}),
    NoticeSpec(NoticeType.BREACH_UPDATE, "breach.updated", Topic.BREACHES, _SECURITY,
               fields={"incident": _TEXT, "update": _TEXT, "closed": {"type": "boolean"}}),
    # Admins too: only they accept a version that widens the commitments applying to their organisation.
    NoticeSpec(NoticeType.AI_COMMITMENT_CHANGE, "ai_commitments.changed", Topic.AI_COMMITMENTS, _PRIVACY_AND_ADMIN,
               public=True, fields={"version": {"type": "integer"}, "effective_date": _DATE,
                                    "expanding": {"type": "boolean", "description": "It widens what applies to the "
                                                  "recipient: it applies to a client only once the client's admin "
                                                  "accepts it. False: it applies on `effective_date`."},
                                    "summary": _TEXT}),
    NoticeSpec(NoticeType.OBJECTION_RESOLVED, "objection.resolved", Topic.SUBPROCESSORS, _PRIVACY_AND_ADMIN,
               fields={"subprocessor": _TEXT, "resolution": _TEXT, "note": _TEXT}),
    NoticeSpec(NoticeType.SUBPROCESSOR_FAILURE, "subprocessor.failure_reported", Topic.COMPLIANCE, _PRIVACY,
               fields={"subprocessor": _TEXT, "description": _TEXT, "measures": _TEXT}),
    NoticeSpec(NoticeType.COMPLIANCE_INABILITY, "compliance.inability_reported", Topic.COMPLIANCE,
               _PRIVACY_AND_ADMIN, fields={"description": _TEXT, "measures": _TEXT}),
    NoticeSpec(NoticeType.AUTHORITY_REQUEST, "authority_request.reported", Topic.COMPLIANCE, _PRIVACY_AND_ADMIN,
               fields={"authority": _TEXT, "received_at": _TEXT, "description": _TEXT}),
    # Sent to one endpoint on request ("send test event", ``service.notify_endpoint``), never by topic or role.
    NoticeSpec(NoticeType.WEBHOOK_TEST, "webhook.test", Topic.COMPLIANCE, frozenset(),
               fields={"endpoint_id": {"type": "string", "format": "uuid"}, "message": _TEXT}),
]}

PAYLOAD_BASE_SCHEMA: dict[str, Any] = {
    "notice_id": {"type": "string", "format": "uuid"},
    "notice_type": {"enum": [t.value for t in NoticeType]},
    "organisation_id": {"type": ["string", "null"], "format": "uuid"},
    "title": _TEXT,
    "link": _URL,
    "acknowledge_url": {"type": ["string", "null"], "format": "uri"},
}


def payload_schema(notice_type: NoticeType) -> dict[str, Any]:
    """JSON schema of the webhook ``data`` object of ``notice_type``."""
    spec = SPECS[notice_type]
    return {
        "type": "object",
        "required": [*PAYLOAD_BASE_SCHEMA, *spec.fields],
        "properties": {**PAYLOAD_BASE_SCHEMA, **spec.fields},
    }


def spec_for(notice_type: NoticeType | str) -> NoticeSpec:
    return SPECS[NoticeType(notice_type)]


@dataclass(frozen=True)
class NoticeContent:
    """What a notice says: the template ``context`` and the type's own webhook ``fields``."""

    type: NoticeType
    title: str
    link: str  # where in the portal (or public site) the recipient reads more or acts
    context: dict[str, Any]
    fields: dict[str, Any]


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


# ---------------------------------------------------------------- one function per notice type

def subscription_confirmation(*, topics: list[str], confirm_link: str) -> NoticeContent:
    labels = [Topic(t).label for t in topics]
    return NoticeContent(NoticeType.SUBSCRIPTION_CONFIRMATION, "Confirm your subscription", confirm_link,
                         {"topics": labels, "confirm_link": confirm_link}, {"topics": topics})


def subprocessor_change(*, version: int, effective_date: dt.date, objection_deadline: dt.date | None,
                        changes: list[dict[str, Any]], link: str) -> NoticeContent:
    fields = {"version": version, "effective_date": effective_date.isoformat(),
              "objection_deadline": _day(objection_deadline), "changes": changes}
    return NoticeContent(NoticeType.SUBPROCESSOR_CHANGE, f"Sub-processor list version {version}: changes from "
                         f"{effective_date.isoformat()}", link, dict(fields), fields)


def dpa_version(*, version: str, document_sha256: str, summary: str, link: str) -> NoticeContent:
    fields = {"version": version, "document_sha256": document_sha256, "summary": summary}
    return NoticeContent(NoticeType.DPA_VERSION, f"New version {version} of the data processing agreement", link,
                         dict(fields), fields)


def signature_request(*, version: str, due_date: dt.date | None, link: str, reference: str = "",
                      signatory: str = "") -> NoticeContent:
    """``signatory``: who the client's admin asked to sign (the organisation's admins and signatories all hear)."""
    fields = {"version": version, "due_date": _day(due_date), "reference": reference, "signatory": signatory}
    return NoticeContent(NoticeType.SIGNATURE_REQUEST, f"Please sign version {version} of the data processing "
                         "agreement", link, dict(fields), fields)


def agreement_executed(*, version: str, document_sha256: str, executed_at: dt.datetime, link: str,
                       reference: str = "") -> NoticeContent:
    fields = {"version": version, "document_sha256": document_sha256, "executed_at": executed_at.isoformat(),
              "reference": reference}
    title = f"Data processing agreement {reference or version} executed" + (
        f" (template version {version})" if reference else "")
    return NoticeContent(NoticeType.AGREEMENT_EXECUTED, title, link, dict(fields), fields)


def breach_notice(*, incident: str, aware_at: dt.datetime, nature: str, categories: str,
                  approximate_numbers: str, likely_consequences: str, measures: str, contact_point: str,
                  link: str, phase: str = "initial", approximate_subjects: str = "", approximate_records: str = "",
                  notified_at: dt.datetime | None = None, changed_fields: list[str] | None = None,
                  art34_draft: str = "") -> NoticeContent:
    """The Art. 33(3) content, as far as it is known (Art. 33(4): further information may follow in phases), with the
    72-hour reference for the client's own notification (legal requirement 45)."""
    notified = notified_at or dt.datetime.now(dt.UTC)
    fields = {"incident": incident, "aware_at": aware_at.isoformat(), "nature": nature, "categories": categories,
              "approximate_numbers": approximate_numbers, "likely_consequences": likely_consequences,
              "measures": measures, "contact_point": contact_point, "phase": phase,
              "approximate_subjects": approximate_subjects, "approximate_records": approximate_records,
              "notified_at": notified.isoformat(),
              "reference_sa_deadline": (notified + dt.timedelta(hours=72)).isoformat(),
              "changed_fields": list(changed_fields or []), "art34_draft": art34_draft}
    title = f"Personal data breach notice: {incident}" if phase == "initial" else (
        f"Personal data breach notice ({phase}): {incident}")
    return NoticeContent(NoticeType.BREACH_NOTICE, title, link, dict(fields), fields)


def breach_update(*, incident: str, update: str, closed: bool, link: str) -> NoticeContent:
    fields = {"incident": incident, "update": update, "closed": closed}
    title = f"Breach {incident}: {'closed' if closed else 'update'}"
    return NoticeContent(NoticeType.BREACH_UPDATE, title, link, dict(fields), fields)


def ai_commitment_change(*, version: int, effective_date: dt.date, expanding: bool, summary: str,
                         link: str) -> NoticeContent:
    fields = {"version": version, "effective_date": effective_date.isoformat(), "expanding": expanding,
              "summary": summary}
    title = f"AI data-use commitments version {version}" + (": your acceptance is needed" if expanding else "")
    return NoticeContent(NoticeType.AI_COMMITMENT_CHANGE, title, link, dict(fields), fields)


def objection_resolved(*, subprocessor: str, resolution: str, note: str, link: str) -> NoticeContent:
    fields = {"subprocessor": subprocessor, "resolution": resolution, "note": note}
    return NoticeContent(NoticeType.OBJECTION_RESOLVED, f"Your objection to {subprocessor}: {resolution}", link,
                         dict(fields), fields)


def subprocessor_failure(*, subprocessor: str, description: str, measures: str, link: str) -> NoticeContent:
    fields = {"subprocessor": subprocessor, "description": description, "measures": measures}
    return NoticeContent(NoticeType.SUBPROCESSOR_FAILURE, f"{subprocessor} failed to meet its obligations", link,
                         dict(fields), fields)


def compliance_inability(*, description: str, measures: str, link: str) -> NoticeContent:
    fields = {"description": description, "measures": measures}
    return NoticeContent(NoticeType.COMPLIANCE_INABILITY, "We cannot currently comply with the Clauses", link,
                         dict(fields), fields)


def authority_request(*, authority: str, received_at: dt.datetime, description: str,
                      link: str) -> NoticeContent:
    fields = {"authority": authority, "received_at": received_at.isoformat(), "description": description}
    return NoticeContent(NoticeType.AUTHORITY_REQUEST, f"Request from a public authority: {authority}", link,
                         dict(fields), fields)


def webhook_test(*, endpoint_id: str, link: str) -> NoticeContent:
    fields = {"endpoint_id": endpoint_id,
              "message": "A test event sent on request from the portal; it needs no action."}
    return NoticeContent(NoticeType.WEBHOOK_TEST, "Webhook test event", link, dict(fields), fields)
