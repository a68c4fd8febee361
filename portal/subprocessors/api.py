"""The client's sub-processor view in the API (scope ``subprocessors:read``), for clients' GRC tools.

The answer is the page "Our sub-processors" as data (``client_view``): the client's agreement terms, the list in
force today with each entry marked when a change to it is not in force for this client, and every change that
concerns the client with its authorisation state, deadline and objections. A client token reads its own
organisation, a vendor token any client's; anything else is 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.api import service as api_service
from portal.api.registry import Caller, api
from portal.subprocessors import client_view
from portal.subprocessors.client_view import Change, ClientView, ListedEntry
from portal.subprocessors.entries import FIELD_NAMES
from portal.subprocessors.models import AuthorisationState, ChangeKind, Objection, Resolution
from portal.web import db, settings_of

TAG = "Sub-processors"
SCOPE = "subprocessors:read"

_TEXT = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_UUID = {"type": "string", "format": "uuid"}
_LIST = {"type": "array", "items": _TEXT}
_AUTHORISATION_OPTIONS = {"enum": ["general", "specific"],
                          "description": "Clause 7.7(a) of Decision 2021/915: `general` (silence by the deadline is "
                                         "consent) or `specific` (an explicit approval is needed)."}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "required": list(properties), "additionalProperties": False,
              "properties": properties}
    return {**schema, "description": description} if description else schema


OBJECTION = api.schema("SubprocessorObjection", _object({
    "id": _UUID,
    "reason": _TEXT,
    "lodged_by": {**_TEXT, "description": "The email of the person who objected."},
    "lodged_at": _TIME,
    "open": {"type": "boolean", "description": "True until the vendor resolves it."},
    "resolution": {"enum": [*(r.value for r in Resolution), None]},
    "resolution_label": {"type": ["string", "null"]},
    "resolution_note": _TEXT,
    "resolved_at": _OPT_TIME,
}, "An objection of the client to one change, and how the vendor resolved it."))

AUTHORISATION = api.schema("SubprocessorAuthorisation", _object({
    "id": _UUID,
    "state": {"enum": [s.value for s in AuthorisationState]},
    "state_label": _TEXT,
    "in_force": {"type": "boolean", "description": "Whether the change may apply to the client's data once it is "
                                                   "effective (authorised or deemed authorised)."},
    "authorisation": _AUTHORISATION_OPTIONS,
    "notice_days": {"type": "integer", "minimum": 0},
    "notified_at": _TIME,
    "deadline": {**_TIME, "description": "The end of the window to object or approve."},
    "open_for_answer": {"type": "boolean", "description": "Pending and before the deadline: the client may object "
                                                          "or approve in the portal."},
    "decided_at": _OPT_TIME,
    "decided_by": {**_TEXT, "description": "Who decided (a person's email, or the portal at the deadline); empty "
                                           "while pending."},
    "objections": {"type": "array", "items": OBJECTION},
}, "The client's position on one change."))

_REGISTER = {
    "legal_entity": _TEXT, "address": _TEXT, "contact": _TEXT, "purpose": _TEXT, "processing": _TEXT,
    "data_categories": _LIST, "locations": {**_LIST, "description": "ISO 3166-1 alpha-2 country codes"},
    "transfer_mechanism": _TEXT, "ai_model_provider": {"type": "boolean"},
    "changed_fields": {**_LIST, "description": "For `changed`: the fields that differ."},
    "replaces": {"type": ["string", "null"], "description": "For `replaced`: the name of the entry it replaces."},
}

CHANGE = api.schema("SubprocessorChange", {
    "type": "object",
    "description": "One change of a published version that concerns the client, with the register fields the "
                   "change notice gave (absent ones are empty).",
    "required": ["version", "announced_at", "effective_date", "in_effect", "kind", "entry_id", "name", *_REGISTER,
                 "authorisation"],
    "additionalProperties": False,
    "properties": {
        "version": {"type": "integer"},
        "announced_at": _TIME,
        "effective_date": _DATE,
        "in_effect": {"type": "boolean", "description": "The version's effective date has come."},
        "kind": {"enum": [k.value for k in ChangeKind]},
        "entry_id": _TEXT,
        "name": _TEXT,
        **_REGISTER,
        "authorisation": {"oneOf": [AUTHORISATION, {"type": "null"}],
                          "description": "null: told for information (removals, or no agreement at the time)."},
    },
})

_ENTRY_FIELDS: dict[str, Any] = {name: _TEXT for name in FIELD_NAMES}
_ENTRY_FIELDS.update({"data_categories": _LIST, "locations": {**_LIST, "description": "ISO 3166-1 alpha-2 codes"},
                      "ai_model_provider": {"type": "boolean"},
                      "transfer_mechanism": {**_TEXT, "description": "A key of the transfer mechanisms, or empty."}})

ENTRY = api.schema("ClientSubprocessorEntry", {
    "type": "object",
    "description": "An entry of the list in force, as the published version holds it, and whether it is in force "
                   "for this client.",
    "required": ["id", *_ENTRY_FIELDS, "depth", "in_force", "held_back"],
    "properties": {
        "id": _TEXT,
        **_ENTRY_FIELDS,
        "depth": {"type": "integer", "minimum": 0, "description": "0 at the top of the chain; children follow "
                                                                  "their parent."},
        "in_force": {"type": "boolean", "description": "False when a change to it that took effect is not in "
                                                       "force for this client (pending, objected, not authorised)."},
        "held_back": {"type": "array", "description": "The changes to it not in force for this client, and why.",
                      "items": _object({"version": {"type": "integer"}, "kind": {"enum": [k.value for k in ChangeKind]},
                                        "state": {"enum": [s.value for s in AuthorisationState]}, "reason": _TEXT})},
    },
})

TERMS = _object({
    "reference": _TEXT,
    "signed_on": _DATE,
    "authorisation": _AUTHORISATION_OPTIONS,
    "notice_days": {"type": "integer", "minimum": 1},
    "notice_days_is_default": {"type": "boolean",
                               "description": "The agreement sets no period of its own: the portal's default."},
}, "The client's active agreement, as far as sub-processor changes are concerned.")

CLIENT_LIST = api.schema("ClientSubprocessorList", _object({
    "organisation": _object({"id": _UUID, "name": _TEXT}),
    "as_of": _TIME,
    "agreement": {"oneOf": [TERMS, {"type": "null"}],
                  "description": "null: no active agreement, so the client is not notified of changes under one."},
    "version": {"oneOf": [_object({"number": {"type": "integer"}, "effective_date": _DATE, "sha256": _TEXT,
                                   "url": {"type": "string", "format": "uri"}}), {"type": "null"}],
                "description": "The vendor's list in force today (null before the first takes effect)."},
    "entries": {"type": "array", "items": ENTRY},
    "changes": {"type": "array", "items": CHANGE, "description": "Newest version first."},
}, "The sub-processor list as it applies to one client organisation."))


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def _objection_json(objection: Objection) -> dict[str, Any]:
    return {"id": str(objection.id), "reason": objection.reason,
            "lodged_by": objection.lodged_by_email or client_view.who(objection.lodged_by),
            "lodged_at": _time(objection.lodged_at), "open": objection.is_open,
            "resolution": objection.resolution.value if objection.resolution else None,
            "resolution_label": objection.resolution.label if objection.resolution else None,
            "resolution_note": objection.resolution_note, "resolved_at": _time(objection.resolved_at)}


def _change_json(change: Change) -> dict[str, Any]:
    item, row = change.item, change.row
    register = {name: item.get(name, "") for name in _REGISTER}
    register.update({"data_categories": list(item.get("data_categories", [])),
                     "locations": list(item.get("locations", [])),
                     "ai_model_provider": bool(item.get("ai_model_provider")),
                     "changed_fields": list(item.get("changed_fields", [])), "replaces": item.get("replaces")})
    authorisation = None if row is None else {
        "id": str(row.id), "state": row.state.value, "state_label": row.state.label, "in_force": row.state.in_force,
        "authorisation": row.authorisation.value, "notice_days": row.notice_days,
        "notified_at": _time(row.notified_at), "deadline": _time(row.deadline),
        "open_for_answer": change.open_for_answer, "decided_at": _time(row.decided_at),
        "decided_by": change.decided_by, "objections": [_objection_json(o) for o in change.objections]}
    return {"version": change.version.number, "announced_at": _time(change.version.announced_at),
            "effective_date": change.version.effective_date.isoformat(), "in_effect": change.in_effect,
            "kind": change.kind.value, "entry_id": change.entry_id, "name": change.name, **register,
            "authorisation": authorisation}


def _entry_json(listed: ListedEntry) -> dict[str, Any]:
    held = [{"version": c.version.number, "kind": c.kind.value,
             "state": c.row.state.value if c.row is not None else AuthorisationState.PENDING.value,
             "reason": c.position} for c in listed.held_back]
    return {**listed.entry, "depth": listed.depth, "in_force": listed.in_force, "held_back": held}


def view_json(view: ClientView, base_url: str) -> dict[str, Any]:
    agreement, terms = view.terms.agreement, view.terms
    return {
        "organisation": {"id": str(view.org.id), "name": view.org.name},
        "as_of": _time(view.now),
        "agreement": None if agreement is None else {
            "reference": agreement.reference,
            "signed_on": (agreement.signed_on or agreement.created_at.date()).isoformat(),
            "authorisation": agreement.subprocessor_authorisation.value, "notice_days": terms.notice_days,
            "notice_days_is_default": terms.default_days},
        "version": None if view.version is None else {
            "number": view.version.number, "effective_date": view.version.effective_date.isoformat(),
            "sha256": view.version.sha256, "url": f"{base_url}/subprocessors/versions/{view.version.number}"},
        "entries": [_entry_json(e) for e in view.entries],
        "changes": [_change_json(c) for c in view.changes],
    }


@api.get("/organisations/{org_id}/subprocessors", summary="The sub-processor list as it applies to the organisation",
         response=CLIENT_LIST, scope=SCOPE, tag=TAG,
         description="The list in force today with the entries not in force for this client marked, every change "
                     "that concerns it with its authorisation state, deadline and objections, and its agreement "
                     "terms. A vendor token reads any client organisation.")
async def organisation_subprocessors(request: Request, caller: Caller) -> dict[str, Any]:
    session = db(request)
    # The vendor's own list is public (/subprocessors.json); it has no authorisations.
    org = await api_service.client_organisation(session, actor=caller.actor, org_id=request.path_params["org_id"])
    settings = settings_of(request)
    view = await client_view.build(session, actor=caller.actor, org=org,
                                   default_notice_days=settings.subprocessor_notice_days)
    return view_json(view, settings.base_url)
