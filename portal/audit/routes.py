"""Audit log pages and exports."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from portal.accounts.roles import Permission
from portal.audit.export import csv_chunks, download_name, json_chunks
from portal.audit.queries import FILTER_FIELDS, AuditFilters, audit_page, export_events, parse_filters
from portal.db import utcnow
from portal.errors import InvalidInput
from portal.web import actor_of, db, render, require_member


def _raw_filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "") for name in (*FILTER_FIELDS, "before")}


async def audit_log(request: Request) -> Response:
    require_member(request, Permission.VIEW_AUDIT)
    raw = _raw_filters(request)
    filters: AuditFilters | None
    try:
        filters, error = parse_filters(raw), None
    except InvalidInput as exc:
        filters, error = None, exc
    page = await audit_page(db(request), actor=actor_of(request), filters=filters)
    return render(request, "audit/log.html", {
        "page": page,
        "values": raw,
        "filters": filters,
        "error": error.message if error else None,
        "field_errors": error.fields if error else {},
    }, status=400 if error else 200)


async def _download(request: Request, extension: str, media_type: str) -> Response:
    require_member(request, Permission.VIEW_AUDIT)
    filters = parse_filters(_raw_filters(request))
    events = await export_events(db(request), actor=actor_of(request), filters=filters)
    now = utcnow()
    chunks: AsyncIterator[str]
    if extension == "csv":
        chunks = csv_chunks(events)
    else:
        chunks = json_chunks(events, exported_at=now, filters=filters.params())
    return StreamingResponse(chunks, media_type=media_type, headers={
        "Content-Disposition": f'attachment; filename="{download_name(extension, now)}"',
        "Cache-Control": "no-store",
    })


async def export_csv(request: Request) -> Response:
    return await _download(request, "csv", "text/csv; charset=utf-8")


async def export_json(request: Request) -> Response:
    return await _download(request, "json", "application/json")


routes: list[BaseRoute] = [
    Route("/audit", audit_log, methods=["GET"]),
    Route("/audit/export.csv", export_csv, methods=["GET"]),
    Route("/audit/export.json", export_json, methods=["GET"]),
]
