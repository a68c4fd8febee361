"""Downloads of a client's incident record (JSON and DOCX) for its Art. 33(5) documentation.

Who may download: whoever reads the client's incident page (``notices.client_incident``): the client's admins and
security contacts, and vendor staff; anyone else gets 404, as does an incident the client was not notified of. The
record holds only that client's notices and never the vendor's internal notes (see ``export``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.agreements.routes import client_org
from portal.breaches import export, notices
from portal.signing.documents import AgreementFile, download_name
from portal.web import actor_of, db

EXPORT = "/orgs/{org_id}/incidents/{incident_id}/export"


async def _record(request: Request) -> dict[str, Any]:
    actor = actor_of(request)
    org = await client_org(request, actor)
    session = db(request)
    incident, sent = await notices.client_incident(session, actor=actor, org=org,
                                                   incident_id=request.path_params["incident_id"])
    return export.incident_record(incident, sent, await notices.receipts(session, sent), org.name)


def _name(record: dict[str, Any], suffix: str) -> str:
    return download_name(f"{record['incident']['reference']}-incident-record.{suffix}")


async def record_json(request: Request) -> Response:
    record = await _record(request)
    data = json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n"
    return AgreementFile(data, _name(record, "json"), "application/json").response()


async def record_docx(request: Request) -> Response:
    record = await _record(request)
    return AgreementFile(export.incident_record_docx(record), _name(record, "docx"), export.DOCX_MEDIA_TYPE).response()


routes: list[BaseRoute] = [
    Route(EXPORT + ".json", record_json, methods=["GET"]),
    Route(EXPORT + ".docx", record_docx, methods=["GET"]),
]
