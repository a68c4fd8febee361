"""The AI commitments in the API: the published versions (public), what applies to an
organisation with its timeline, acceptances, declines and training instructions (``ai_commitments:read``), and,
for the client's own token, accepting or declining a widening version and recording an instruction
(``ai_commitments:instruct``).

Invariants (legal requirements 55, 57, 60):
- a client token reads only its own organisation (anything else is 404); a vendor token reads every client but
  changes nothing of theirs: acceptances and instructions come only from the client's own token;
- the token's scope stands for the client admin's ``GIVE_INSTRUCTIONS`` (only admins make tokens); the record
  names the token, and the same checks as in the portal refuse what the portal refuses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from starlette.requests import Request

from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.ai_commitments import acceptance, instructions, ledger, standing
from portal.ai_commitments.document import DATA_CLASSES
from portal.ai_commitments.models import Acceptance, CommitmentVersion, Decline, TrainingInstruction
from portal.api import service as api_service
from portal.api.registry import Caller, api, json_body
from portal.db import utcnow
from portal.errors import InvalidInput
from portal.web import db

TAG = "AI commitments"
READ, INSTRUCT = "ai_commitments:read", "ai_commitments:instruct"

_TEXT = {"type": "string"}
_DATE = {"type": "string", "format": "date"}
_TIME = {"type": "string", "format": "date-time"}
_NUMBER = {"type": "integer", "minimum": 1}
_HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_CLASS = {"enum": list(DATA_CLASSES)}


def _object(properties: dict[str, Any], description: str = "", nullable: bool = False) -> dict[str, Any]:
    return {"type": ["object", "null"] if nullable else "object", "required": list(properties),
            "additionalProperties": False, "properties": properties, **({"description": description}
                                                                         if description else {})}


VERSION = api.schema("AiCommitmentsVersion", _object({
    "number": _NUMBER, "effective_date": _DATE, "published_at": _TIME, "reason": _TEXT,
    "expanding": {"type": "boolean", "description": "It widens what the previous version allowed."},
    "expanding_reasons": {"type": "array", "items": _TEXT},
    "changes": {"type": "object", "description": "Dotted field path -> `{before, after}` against the previous "
                                                 "version."},
    "previous_sha256": _HASH, "sha256": {**_HASH, "description": "SHA-256 of the canonical JSON of number, "
                                                             "effective date, reason, document and "
                                                             "`previous_sha256`: the chain anyone can recompute."},
    "document": {"type": "object", "description": "The commitments: `data_classes` and `features`, as in "
                                                  "/ai-commitments.json."},
}, "One published, unchangeable version of the AI data-use commitments."))
VERSION_LIST = api.schema("AiCommitmentsVersionList", _object({"items": {"type": "array", "items": VERSION}},
                                                              "Oldest first."))
ACCEPTANCE = api.schema("AiCommitmentsAcceptance", _object({
    "number": _NUMBER, "sha256": _HASH, "widening": {"type": "array", "items": _TEXT,
                                                     "description": "What it widened for the organisation."},
    "statement": _TEXT, "accepted_by": _TEXT, "accepted_at": _TIME,
}, "The organisation's recorded acceptance of a version that widened what applied to it."))
DECLINE = api.schema("AiCommitmentsDecline", _object({
    "number": _NUMBER, "reason": _TEXT, "declined_by": _TEXT, "declined_at": _TIME,
}, "The organisation's recorded refusal of a version that widens what applies to it: the version does not apply "
   "(as without an answer), and the organisation may still accept it."))
INSTRUCTION = api.schema("AiTrainingInstruction", _object({
    "seq": _NUMBER, "data_class": _CLASS, "training": {"type": "boolean", "description": "On (true) or off."},
    "note": _TEXT, "given_by": _TEXT, "given_at": _TIME,
    "commitments_version": {"type": ["integer", "null"], "description": "The version applying when given."},
}, "A documented instruction of the organisation's admin: training on one data class on or off."))
_PERIOD = _object({"number": _NUMBER, "from": _DATE,
                   "accepted_at": {"type": ["string", "null"], "format": "date-time",
                                   "description": "Null: it applied on its date, widening nothing."}},
                  "From `from` on, this version applied to the organisation (until the next period).")
STANDING = api.schema("AiCommitmentsStanding", _object({
    "organisation": _object({"id": {"type": "string", "format": "uuid"}, "name": _TEXT}),
    "as_of": _DATE,
    "applying": {**_object({"number": _NUMBER, "sha256": _HASH, "since": _DATE}), "type": ["object", "null"],
                 "description": "The version applying today; null before the first takes effect."},
    "newest": {**_object({"number": _NUMBER, "state": {"enum": [s.value for s in standing.State]},
                          "widening": {"type": "array", "items": _TEXT}}), "type": ["object", "null"],
               "description": "The newest version and where the organisation stands on it: `pending_acceptance` "
                              "when it widens what applies and waits for the organisation's acceptance."},
    "timeline": {"type": "array", "items": _PERIOD, "description": "Oldest first: for any date, the last period "
                                                                   "whose `from` is not after it applied."},
    "acceptances": {"type": "array", "items": ACCEPTANCE},
    "declines": {"type": "array", "items": DECLINE},
    "training": {"type": "array", "items": _object({
        "data_class": _CLASS, "enabled": {"type": "boolean", "description": "Training happens: switched on by an "
                                                                            "instruction and allowed by the "
                                                                            "version applying."},
        "instructed": {"type": "boolean"}, "allowed": {"type": "boolean"}})},
    "instructions": {"type": "array", "items": INSTRUCTION, "description": "Newest first."},
}, "What the vendor promises the organisation about its data and AI, and what the organisation instructed."))
ACCEPT_BODY = {"type": "object", "required": ["version", "confirm"], "additionalProperties": False,
               "properties": {"version": {**_NUMBER, "examples": [2], "description": "The version to accept."},
                              "confirm": {"const": True, "description": "The organisation accepts it, as "
                                                                        "its documented instruction."}}}
DECLINE_BODY = {"type": "object", "required": ["version", "reason"], "additionalProperties": False,
                "properties": {"version": {**_NUMBER, "examples": [2], "description": "The version to decline."},
                               "reason": {**_TEXT, "maxLength": 2000, "description": "Why: the vendor reads it."}}}
INSTRUCT_BODY = {"type": "object", "required": ["data_class", "training", "note"], "additionalProperties": False,
                 "properties": {"data_class": _CLASS, "training": {"type": "boolean"},
                                "note": {**_TEXT, "maxLength": 2000, "description": "Why: kept with it."}}}


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def version_json(version: CommitmentVersion) -> dict[str, Any]:
    assert version.effective_date is not None
    assert version.published_at is not None
    return {"number": version.number, "effective_date": version.effective_date.isoformat(),
            "published_at": _time(version.published_at), "reason": version.reason, "expanding": version.expanding,
            "expanding_reasons": list(version.expanding_reasons), "changes": dict(version.changes),
            "previous_sha256": version.previous_sha256, "sha256": version.sha256, "document": version.document}


def acceptance_json(row: Acceptance) -> dict[str, Any]:
    return {"number": row.number, "sha256": row.sha256, "widening": list(row.widening), "statement": row.statement,
            "accepted_by": row.accepted_by, "accepted_at": _time(row.accepted_at)}


def decline_json(row: Decline) -> dict[str, Any]:
    return {"number": row.number, "reason": row.reason, "declined_by": row.declined_by,
            "declined_at": _time(row.declined_at)}


def instruction_json(row: TrainingInstruction) -> dict[str, Any]:
    return {"seq": row.seq, "data_class": row.data_class, "training": row.enabled, "note": row.note,
            "given_by": row.given_by, "given_at": _time(row.given_at), "commitments_version": row.commitments_version}


def _actor(caller: Caller) -> Actor:
    """The caller, with the scope standing for the client admin's permission (client tokens only)."""
    own = caller.actor.org
    granted = {Permission.GIVE_INSTRUCTIONS} if own is not None and not own.is_vendor and \
        INSTRUCT in caller.actor.scopes else set()
    return dataclasses.replace(caller.actor, granted=frozenset(granted))


async def _client(request: Request, caller: Caller, *, own_only: bool = False) -> Organisation:
    """The client in the path; the vendor has no commitments of its own, and changes are the client's own."""
    return await api_service.client_organisation(db(request), actor=caller.actor,
                                                 org_id=request.path_params["org_id"], own_only=own_only)


@api.public_get("/ai-commitments/versions", summary="Every published version of the AI data-use commitments",
                response=VERSION_LIST, tag=TAG,
                description="Public, like /ai-commitments.json: no token needed. Oldest first, each with its "
                            "effective date, reason, changes, whether it widens the previous one, and the chain of "
                            "hashes.")
async def list_ai_commitment_versions(request: Request) -> dict[str, Any]:
    return {"items": [version_json(v) for v in await ledger.versions(db(request))]}


async def standing_json(request: Request, org: Organisation) -> dict[str, Any]:
    session = db(request)
    position = await standing.standing_of(session, org)
    applied, newest = position.applied, position.newest
    return {
        "organisation": {"id": str(org.id), "name": org.name},
        "as_of": utcnow().date().isoformat(),
        "applying": None if applied is None else {"number": applied.version.number, "sha256": applied.version.sha256,
                                                  "since": applied.start.isoformat()},
        "newest": None if newest is None or position.state is None else {
            "number": newest.number, "state": position.state.value, "widening": list(position.widening)},
        "timeline": [{"number": p.version.number, "from": p.start.isoformat(),
                      "accepted_at": _time(p.accepted.accepted_at) if p.accepted else None}
                     for p in position.timeline],
        "acceptances": [acceptance_json(a) for a in position.acceptances.values()],
        "declines": [decline_json(d) for d in position.declines.values()],
        "training": [{"data_class": s.data_class, "enabled": s.enabled, "instructed": s.instructed,
                      "allowed": s.allowed} for s in await instructions.settings_of(session, org)],
        "instructions": [instruction_json(row) for row in await instructions.history(session, org)],
    }


@api.get("/organisations/{org_id}/ai-commitments", summary="The AI commitments applying to the organisation",
         response=STANDING, scope=READ, tag=TAG,
         description="The version applying today, where the organisation stands on the newest one, the timeline "
                     "of versions that applied to it, its acceptances, its training settings and instructions. "
                     "A client token reads its own organisation; a vendor token any client; else 404.")
async def get_organisation_ai_commitments(request: Request, caller: Caller) -> dict[str, Any]:
    return await standing_json(request, await _client(request, caller))


def _version_number(body: dict[str, Any]) -> str:
    number = body.get("version")
    if isinstance(number, bool) or not isinstance(number, int):
        raise InvalidInput("`version` must be a version number.", fields={"version": "A version number."})
    return str(number)


# Declining comes first: a client may decline a version and accept it later, never the other way round.
@api.operation("POST", "/organisations/{org_id}/ai-commitments/declines",
               summary="Decline a version that widens the commitments applying to the organisation",
               response=DECLINE, request=DECLINE_BODY, scope=INSTRUCT, tag=TAG, status=201,
               description="Records, once, that the organisation does not accept the version, with the reason the "
                           "vendor reads. What applies to the organisation stays as it is, and it may still accept "
                           "later. Only the token's own client organisation; anything else is 404.")
async def decline_ai_commitments_version(request: Request, caller: Caller) -> dict[str, Any]:
    org = await _client(request, caller, own_only=True)
    body = await json_body(request, fields=["version", "reason"])
    reason = body.get("reason")
    if not isinstance(reason, str):
        raise InvalidInput("`reason` must be text.", fields={"reason": "Text."})
    row = await acceptance.decline(db(request), actor=_actor(caller), org=org, number=_version_number(body),
                                   reason=reason)
    return decline_json(row)


@api.operation("POST", "/organisations/{org_id}/ai-commitments/acceptances",
               summary="Accept a version that widens the commitments applying to the organisation",
               response=ACCEPTANCE, request=ACCEPT_BODY, scope=INSTRUCT, tag=TAG, status=201,
               description="Only a published version that widens what applies to the organisation, once, with "
                           "`confirm: true`; from then on (and not before its effective date) it applies. Only "
                           "the token's own client organisation; anything else is 404.")
async def accept_ai_commitments_version(request: Request, caller: Caller) -> dict[str, Any]:
    org = await _client(request, caller, own_only=True)
    body = await json_body(request, fields=["version", "confirm"])
    row = await acceptance.accept(db(request), actor=_actor(caller), org=org, number=_version_number(body),
                                  confirmed=body.get("confirm") is True)
    return acceptance_json(row)


@api.operation("POST", "/organisations/{org_id}/ai-commitments/instructions",
               summary="Record a training instruction for one data class", response=INSTRUCTION,
               request=INSTRUCT_BODY, scope=INSTRUCT, tag=TAG, status=201,
               description="Training on the organisation's data of `data_class` on or off, with the reason. "
                           "Switching on is refused where the version applying does not train on that class at "
                           "all. Only the token's own client organisation; anything else is 404.")
async def record_ai_training_instruction(request: Request, caller: Caller) -> dict[str, Any]:
    org = await _client(request, caller, own_only=True)
    body = await json_body(request, fields=["data_class", "training", "note"])
    training, note = body.get("training"), body.get("note")
    if not isinstance(training, bool):
        raise InvalidInput("`training` must be true or false.", fields={"training": "true or false."})
    if not isinstance(note, str):
        raise InvalidInput("`note` must be text.", fields={"note": "Text."})
    row = await instructions.record(db(request), actor=_actor(caller), org=org,
                                    data_class=str(body.get("data_class") or ""), enabled=training, note=note)
    return instruction_json(row)
