"""A client's data processing agreements in the API (scope ``agreements:read``), for clients' GRC tools.

Invariants:
- a client token reads its own organisation's agreements, a vendor token any client's; anything else (another
  client, the vendor itself, an agreement or a document of another organisation) answers 404;
- the API only reads: it records no view and changes no agreement;
- every document is served with exactly the bytes, media type and SHA-256 stored with it; ``document`` is the
  text the signatures bind to (the current rendering while a draft), hashed in ``document_sha256``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from portal.accounts.models import Organisation
from portal.agreements import service as agreements_service
from portal.agreements.events import events_of
from portal.agreements.models import (
    Agreement,
    AgreementSource,
    AgreementStatus,
    Authorisation,
    DocumentKind,
    EventType,
    Party,
    Signature,
    SignatureLevel,
)
from portal.api import service as api_service
from portal.api.registry import PREFIX, Caller, api
from portal.dpa.models import TemplateVersion
from portal.settings import Settings
from portal.signing import access
from portal.signing.documents import CURRENT_TEXT, KINDS, agreement_file, download_name, listings, text_name
from portal.signing.execution import MEDIA_TYPES
from portal.tenancy import scoped
from portal.web import db, settings_of

TAG = "Agreements"
SCOPE = "agreements:read"

_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_OPT_TIME = {"type": ["string", "null"], "format": "date-time"}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_OPT_SHA256 = {"type": ["string", "null"], "pattern": "^[0-9a-f]{64}$"}
_COUNT = {"type": "integer", "minimum": 1}


def _object(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    schema = {"type": "object", "required": list(properties), "additionalProperties": False,
              "properties": properties}
    return {**schema, "description": description} if description else schema


SIGNATURE = api.schema("AgreementSignature", _object({
    "party": {"enum": [p.value for p in Party]}, "name": _TEXT, "title": _TEXT, "organisation": _TEXT,
    "signed_at": _TIME, "level": {"enum": [level.value for level in SignatureLevel]},
    "auth_method": {**_TEXT, "description": "How the signer had logged in: `password`, `password+totp`, `sso`."},
}, "One party's signature (a click in the portal is a simple electronic signature, `SES`)."))

DOCUMENT = api.schema("AgreementDocument", _object({
    "kind": {"enum": KINDS}, "filename": _TEXT, "media_type": _TEXT,
    "sha256": {**_SHA256, "description": "Of exactly the bytes the download gives."},
    "size": {"type": "integer", "minimum": 0, "description": "In bytes."},
    "url": {"type": "string", "format": "uri", "description": "The download (needs the same token scope)."},
}, "A document of the agreement: `document` is the text the signatures bind to, the other kinds are stored when "
   "the agreement is executed (`bundle` holds them all and verifies offline)."))

_AGREEMENT = {
    "id": {"type": "string", "format": "uuid"}, "reference": _TEXT,
    "status": {"enum": [s.value for s in AgreementStatus]}, "source": {"enum": [s.value for s in AgreementSource]},
    "in_force": {"type": "boolean", "description": "Executed and not ended: the agreement that applies now."},
    "template": {"oneOf": [_object({"number": _COUNT, "sha256": _SHA256}), {"type": "null"}],
                 "description": "The DPA template version it was rendered from (null: recorded, signed outside)."},
    "document_sha256": {**_OPT_SHA256, "description": "The text every signature binds to (null: none yet)."},
    "terms": _object({
        "notice_days": {"type": ["integer", "null"], "description": "null: the portal's default."},
        "effective_notice_days": _COUNT,
        "breach_target_hours": {"type": ["integer", "null"], "description": "null: the portal's default."},
        "effective_breach_target_hours": _COUNT,
        "subprocessor_authorisation": {"enum": [a.value for a in Authorisation]},
    }, "Sub-processor change notice period, breach notification target and Clause 7.7(a) authorisation."),
    "created_at": _TIME, "sent_at": _OPT_TIME, "executed_at": _OPT_TIME, "ended_at": _OPT_TIME,
    "end_reason": {**_TEXT, "description": "Why it was superseded or terminated; empty otherwise."},
    "decline_reason": {**_TEXT, "description": "The signatory's reason, when declined; empty otherwise."},
    "signatures": {"type": "array", "items": SIGNATURE},
    "documents": {"type": "array", "items": DOCUMENT},
}
AGREEMENT = api.schema("Agreement", _object(_AGREEMENT, "A data processing agreement and its state."))
EVENT = api.schema("AgreementEvent", _object({
    "seq": _COUNT, "type": {"enum": [t.value for t in EventType]}, "at": _TIME,
    "actor": {**_TEXT, "description": "`user:<email>`, `token:<name>` or the portal itself."}, "ip": _TEXT,
    "user_agent": _TEXT, "auth_method": _TEXT,
}, "One step of the agreement's life, with who, when, from where and how they had logged in."))
AGREEMENT_WITH_EVENTS = api.schema("AgreementWithEvents", _object(
    {**_AGREEMENT, "events": {"type": "array", "items": EVENT}}, "An agreement with every event, in order."))
AGREEMENT_LIST = api.schema("AgreementList", _object({"items": {"type": "array", "items": AGREEMENT}},
                                                     "The organisation's agreements, newest first."))


# ---------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Related:
    """What the JSON of some agreements needs beyond their rows, by agreement id."""

    templates: dict[uuid.UUID, tuple[int, str]]
    signatures: dict[uuid.UUID, list[Signature]]
    documents: dict[uuid.UUID, list[Any]]  # rows of (agreement_id, kind, filename, media_type, sha256, size)
    text_sizes: dict[uuid.UUID, int]


async def _related(session: AsyncSession, org: Organisation, agreements: list[Agreement]) -> _Related:
    ids = [a.id for a in agreements]
    template_ids = {a.template_version_id for a in agreements if a.template_version_id is not None}
    templates = (await session.execute(select(TemplateVersion.id, TemplateVersion.number, TemplateVersion.sha256)
                                       .where(TemplateVersion.id.in_(template_ids)))).all()
    signatures = (await session.execute(scoped(select(Signature).where(Signature.agreement_id.in_(ids))
                                               .order_by(Signature.signed_at), Signature, org))).scalars()
    sizes = (await session.execute(scoped(select(Agreement.id, func.length(Agreement.document_docx))
                                          .where(Agreement.id.in_(ids), Agreement.document_docx.is_not(None)),
                                          Agreement, org))).all()
    related = _Related({row.id: (row.number, row.sha256) for row in templates}, {},
                       await listings(session, org, ids), {row[0]: int(row[1]) for row in sizes})
    for signature in signatures:
        related.signatures.setdefault(signature.agreement_id, []).append(signature)
    return related


# ---------------------------------------------------------------- JSON


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value else None


def _url(settings: Settings, agreement: Agreement, kind: str) -> str:
    return f"{settings.base_url}{PREFIX}/organisations/{agreement.org_id}/agreements/{agreement.id}/documents/{kind}"


def _signature_json(signature: Signature) -> dict[str, Any]:
    return {"party": signature.party.value, "name": signature.name, "title": signature.title,
            "organisation": signature.organisation, "signed_at": _time(signature.signed_at),
            "level": signature.level.value, "auth_method": signature.auth_method}


def _documents_json(agreement: Agreement, related: _Related, settings: Settings) -> list[dict[str, Any]]:
    documents = []
    if agreement.id in related.text_sizes:
        documents.append({"kind": CURRENT_TEXT, "filename": text_name(agreement),
                          "media_type": MEDIA_TYPES[DocumentKind.SIGNED_DOCX], "sha256": agreement.document_sha256,
                          "size": related.text_sizes[agreement.id], "url": _url(settings, agreement, CURRENT_TEXT)})
    documents += [{"kind": row.kind.value, "filename": download_name(row.filename), "media_type": row.media_type,
                   "sha256": row.sha256, "size": row.size, "url": _url(settings, agreement, row.kind.value)}
                  for row in related.documents.get(agreement.id, [])]
    return documents


def agreement_json(agreement: Agreement, related: _Related, settings: Settings) -> dict[str, Any]:
    template = related.templates.get(agreement.template_version_id) if agreement.template_version_id else None
    return {
        "id": str(agreement.id), "reference": agreement.reference, "status": agreement.status.value,
        "source": agreement.source.value, "in_force": agreement.status is AgreementStatus.EXECUTED,
        "template": None if template is None else {"number": template[0], "sha256": template[1]},
        "document_sha256": agreement.document_sha256 or None,
        "terms": {"notice_days": agreement.notice_days,
                  "effective_notice_days": agreement.notice_days_or(settings.subprocessor_notice_days),
                  "breach_target_hours": agreement.breach_target_hours,
                  "effective_breach_target_hours": agreement.breach_target_hours_or(settings.breach_target_hours),
                  "subprocessor_authorisation": agreement.subprocessor_authorisation.value},
        "created_at": _time(agreement.created_at), "sent_at": _time(agreement.sent_at),
        "executed_at": _time(agreement.executed_at), "ended_at": _time(agreement.ended_at),
        "end_reason": agreement.end_reason, "decline_reason": agreement.decline_reason,
        "signatures": [_signature_json(s) for s in related.signatures.get(agreement.id, [])],
        "documents": _documents_json(agreement, related, settings),
    }


# ---------------------------------------------------------------- endpoints


async def _client(request: Request, caller: Caller) -> Organisation:
    """The client organisation in the path: the token's own, or any client's for a vendor token; else 404."""
    # Agreements are the clients'; the vendor has none of its own.
    return await api_service.client_organisation(db(request), actor=caller.actor,
                                                 org_id=request.path_params["org_id"])


async def _agreement(request: Request, caller: Caller) -> tuple[Organisation, Agreement]:
    org = await _client(request, caller)
    agreement = await access.agreement_of(db(request), actor=caller.actor, org=org,
                                            agreement_id=request.path_params["agreement_id"])
    return org, agreement


@api.get("/organisations/{org_id}/agreements", summary="The organisation's agreements and their states",
         response=AGREEMENT_LIST, scope=SCOPE, tag=TAG,
         description="Newest first, each with its terms, signatures and documents. A vendor token reads any client "
                     "organisation; anything else is 404.")
async def list_agreements(request: Request, caller: Caller) -> dict[str, Any]:
    """Every agreement of a client the token may read, newest first; others' answer 404."""
    session = db(request)
    org = await _client(request, caller)
    agreements = await agreements_service.agreements_of(session, org)
    related = await _related(session, org, agreements)
    return {"items": [agreement_json(a, related, settings_of(request)) for a in agreements]}


@api.get("/organisations/{org_id}/agreements/{agreement_id}", summary="One agreement with its events",
         response=AGREEMENT_WITH_EVENTS, scope=SCOPE, tag=TAG,
         description="404 for an organisation the token may not read or an agreement that is not the organisation's.")
async def get_agreement(request: Request, caller: Caller) -> dict[str, Any]:
    """One agreement of a client the token may read, with every event in order; anything else is 404."""
    session = db(request)
    org, agreement = await _agreement(request, caller)
    events = await events_of(session, org, agreement)
    return {**agreement_json(agreement, await _related(session, org, [agreement]), settings_of(request)),
            "events": [{"seq": e.seq, "type": e.type.value, "at": _time(e.at), "actor": e.actor, "ip": e.ip,
                        "user_agent": e.user_agent, "auth_method": e.auth_method} for e in events]}


@api.download("/organisations/{org_id}/agreements/{agreement_id}/documents/{kind}",
              summary="Download a document or the evidence bundle of an agreement", media_types=MEDIA_TYPES.values(),
              scope=SCOPE, tag=TAG, params={"kind": {"type": "string", "enum": KINDS}},
              description="The bytes as stored, with their media type and file name (`Content-Disposition`); their "
                          "SHA-256 is the one the agreement lists. `document` is the text the signatures bind to. "
                          "404 when the agreement has no such document.")
async def download_agreement_document(request: Request, caller: Caller) -> Response:
    """A document of an agreement of a client the token may read, exactly as stored; anything else is 404."""
    org, agreement = await _agreement(request, caller)
    found = await agreement_file(db(request), org, agreement, request.path_params["kind"])
    return found.response()
