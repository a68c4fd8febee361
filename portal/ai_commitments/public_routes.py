"""The public AI data-use commitments (no login): the version in force today or on any day (``?as_of=``) in plain
words with the whole history, a page per version with its changes against the previous one, and the same as JSON
(schema in ``feed_schema``) with what a reader needs to recompute the chain of hashes.

Rules:
- the pages are the same for every visitor, logged in or not: they show the ledger only, never a client's own
  acceptances or instructions, and are rendered without the account menu, flash messages or a form token;
- every answer carries an ETag derived from the newest version's SHA-256 (the ledger only grows, so that hash names
  its whole state), the day the answer is for and the path; ``Cache-Control: public, max-age=60``; a matching
  ``If-None-Match`` (or, without it, ``If-Modified-Since``) is answered 304 before anything is rendered;
- a malformed ``as_of`` is a 400 that says how to write it; an unknown version number is a 404.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from email.utils import format_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.ai_commitments import ledger, plain
from portal.ai_commitments.models import CommitmentVersion
from portal.db import utcnow
from portal.errors import NotFound
from portal.subprocessors import feeds, public_cache
from portal.web import db, settings_of, templates, vendor_display_name

Build = Callable[[], Awaitable[tuple[bytes, str]]]
HTML, JSON = "text/html", "application/json"
HOW_TO_VERIFY = (
    "Each version's sha256 is the SHA-256 (lowercase hex) of the canonical JSON of the object {\"number\", "
    "\"effective_date\" (YYYY-MM-DD), \"reason\", \"document\", \"previous_sha256\"}, taken from the version as "
    "given here: keys sorted, no whitespace (separators ',' and ':'), UTF-8 without escaping non-ASCII characters. "
    "previous_sha256 is the sha256 of the version before it (64 zeros for version 1), so recomputing every hash in "
    "history order and comparing each previous_sha256 with the hash before it checks the whole chain.")


# ---------------------------------------------------------------- conditional answers

async def _answer(request: Request, *, newest: CommitmentVersion | None, day: dt.date, build: Build) -> Response:
    """A 304 when the client holds this answer (ETag from the newest hash, the day and the path), else ``build``."""
    key = f"ai-commitments|{newest.sha256 if newest else ledger.GENESIS}|{day.isoformat()}|{request.url.path}"
    modified = feeds.modified_at(newest.published_at if newest else None, day, utcnow())
    headers = {"ETag": public_cache.etag_for(key), "Cache-Control": public_cache.CACHE_CONTROL,
               "Last-Modified": format_datetime(modified, usegmt=True)}
    if public_cache.not_modified(request.headers, headers["ETag"], modified):
        return Response(status_code=304, headers=headers)
    body, media_type = await build()
    return Response(body, media_type=media_type, headers=headers)


def _page(name: str, vendor: str, context: dict[str, Any]) -> bytes:
    """A page as every visitor sees it: no account menu, no flash messages, no form token."""
    return templates.get_template(name).render({
        "current": None, "memberships": [], "flashes": [], "csrf_token": "", "vendor_name": vendor,
        **context}).encode()


# ---------------------------------------------------------------- what the answers hold

def statuses(versions: list[CommitmentVersion], in_force: CommitmentVersion | None, day: dt.date) -> dict[int, str]:
    """Each version's standing on ``day``: in force, superseded, or not yet in effect."""
    out: dict[int, str] = {}
    for version in versions:
        assert version.number is not None  # published
        if in_force is not None and version.number == in_force.number:
            out[version.number] = "In force"
        else:
            out[version.number] = "Superseded" if (version.effective_date or day) <= day else "Not yet in effect"
    return out


def version_json(version: CommitmentVersion, base_url: str) -> dict[str, Any]:
    """A published version with everything its hash covers, so a reader can recompute it (``ledger.chain_hash``)."""
    assert version.effective_date is not None
    return {"number": version.number, "effective_date": version.effective_date.isoformat(), "reason": version.reason,
            "expanding": version.expanding, "expanding_reasons": list(version.expanding_reasons),
            "sha256": version.sha256, "previous_sha256": version.previous_sha256, "document": version.document,
            "url": f"{base_url}/ai-commitments/versions/{version.number}"}


def public_document(versions: list[CommitmentVersion], in_force: CommitmentVersion | None, *, day: dt.date,
                    vendor: str, base_url: str) -> dict[str, Any]:
    """``/ai-commitments.json``: the version in force on ``day`` and the whole chain, oldest first."""
    return {"vendor": vendor, "as_of": day.isoformat(), "latest_version": versions[-1].number if versions else 0,
            "in_force": version_json(in_force, base_url) if in_force else None,
            "history": [version_json(v, base_url) for v in versions], "how_to_verify": HOW_TO_VERIFY,
            "links": {"html": f"{base_url}/ai-commitments"}}


# ---------------------------------------------------------------- routes

async def commitments_page(request: Request) -> Response:
    day, as_of = public_cache.as_of_day(request.query_params, utcnow().date())
    session, vendor = db(request), vendor_display_name(request)
    versions = await ledger.versions(session)

    async def build() -> tuple[bytes, str]:
        in_force = await ledger.in_force_on(session, day)
        return _page("ai_commitments/public/index.html", vendor, {
            "day": day, "as_of": as_of, "today": utcnow().date(), "in_force": in_force,
            "terms": plain.terms(in_force.document) if in_force else None,
            "history": list(reversed(versions)), "statuses": statuses(versions, in_force, day),
            "first": versions[0] if versions else None, "query": f"?as_of={day.isoformat()}" if as_of else "",
        }), HTML

    return await _answer(request, newest=versions[-1] if versions else None, day=day, build=build)


async def version_page(request: Request) -> Response:
    session, vendor, today = db(request), vendor_display_name(request), utcnow().date()
    versions = await ledger.versions(session)
    raw = str(request.path_params["number"])
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else 0
    version = next((v for v in versions if v.number == number), None)
    if version is None:
        raise NotFound("There is no such version of the AI commitments." + (
            f" The newest is version {versions[-1].number}." if versions else " None has been published yet."))

    async def build() -> tuple[bytes, str]:
        in_force = await ledger.in_force_on(session, today)
        return _page("ai_commitments/public/version.html", vendor, {
            "version": version, "latest": versions[-1].number, "status": statuses(versions, in_force, today)[number],
            "terms": plain.terms(version.document), "changes": plain.changes(version.changes),
        }), HTML

    return await _answer(request, newest=versions[-1], day=today, build=build)


async def commitments_json(request: Request) -> Response:
    day, _as_of = public_cache.as_of_day(request.query_params, utcnow().date())
    session, vendor, base_url = db(request), vendor_display_name(request), settings_of(request).base_url
    versions = await ledger.versions(session)

    async def build() -> tuple[bytes, str]:
        in_force = await ledger.in_force_on(session, day)
        document = public_document(versions, in_force, day=day, vendor=vendor, base_url=base_url)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), JSON

    return await _answer(request, newest=versions[-1] if versions else None, day=day, build=build)


routes: list[BaseRoute] = [
    Route("/ai-commitments", commitments_page, methods=["GET"]),
    Route("/ai-commitments.json", commitments_json, methods=["GET"]),
    Route("/ai-commitments/versions/{number}", version_page, methods=["GET"]),
]
