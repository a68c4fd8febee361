"""The public sub-processor pages and feeds (no login): the list in force today or on any day (``?as_of=``), a page
per version, the differences between any two versions, and the list as JSON, Atom and CSV.

Every answer carries an ETag and Last-Modified and is answered 304 when the client already has it; the rendered
bytes are kept until a publish or a new day, and answered from memory before the app's session and database layers
(see ``public_cache``). The pages are the same for every visitor, logged in or not: the subscribe box is a GET
form to the subscription page, so they hold no per-visitor token.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.db import utcnow
from portal.errors import NotFound
from portal.subprocessors import feeds, public_cache, registry
from portal.subprocessors.entries import Entry, diff_entries, field_label
from portal.subprocessors.models import ListVersion
from portal.web import db, render, settings_of, templates, vendor_display_name

Build = Callable[[AsyncSession], Awaitable[tuple[bytes, str, tuple[tuple[str, str], ...]]]]


# ---------------------------------------------------------------- conditional, cached answers

async def _answer(request: Request, *, latest: int, day: dt.date, build: Build) -> Response:
    """The cached answer for this request, a 304, or a freshly built one (then cached for the fast path)."""
    session = db(request)
    answers = public_cache.answers_of(request.app.state)
    answers.saw(latest)
    key = public_cache.answer_key(latest=latest, day=day, path=request.scope["path"],
                                  query=request.scope["query_string"].decode("latin-1"))
    answer = answers.cache.get(key)
    etag = public_cache.etag_for(key)
    if answer is None and public_cache.not_modified(request.headers, etag, None):  # the client has it: no render
        return Response(status_code=304, headers={"ETag": etag, "Cache-Control": public_cache.CACHE_CONTROL})
    if answer is None:
        body, media_type, extra = await build(session)
        modified = feeds.modified_at(await feeds.announced_at(session, latest), day, utcnow())
        answer = public_cache.Answer(body, media_type, modified, extra)
        answers.cache.put(key, answer)
    return public_cache.respond(answer, key, request.headers)


def _page(name: str, vendor: str, context: dict[str, Any]) -> bytes:
    """A page as every visitor sees it: no account menu, no flash messages, no form token."""
    return templates.get_template(name).render({
        "current": None, "memberships": [], "flashes": [], "csrf_token": "", "vendor_name": vendor,
        **context}).encode()


HTML = "text/html"


# ---------------------------------------------------------------- what the pages show

def statuses(versions: list[ListVersion], in_force: ListVersion | None, day: dt.date) -> dict[int, str]:
    """Each version's standing on ``day``: in force, superseded, announced to come, or published later."""
    out: dict[int, str] = {}
    for version in versions:
        if in_force is not None and version.number == in_force.number:
            out[version.number] = "In force"
        elif version.effective_date <= day:
            out[version.number] = "Superseded"
        elif version.announced_at.astimezone(dt.UTC).date() <= day:
            out[version.number] = "Upcoming"
        else:
            out[version.number] = "Published later"
    return out


@dataclass(frozen=True)
class FieldChange:
    label: str
    before: str
    after: str


@dataclass(frozen=True)
class EntryChange:
    kind: str  # added, removed, changed
    entry: feeds.PublicEntry
    fields: list[FieldChange]


def _shown(name: str, entry: Entry, names: dict[str, str]) -> str:
    if name == "parent_id":
        return names.get(str(entry.get(name) or ""), "")
    return feeds.display(name, entry.get(name))


def differences(old: list[Entry], new: list[Entry]) -> list[EntryChange]:
    """Entries added, removed and changed from ``old`` to ``new``, changed ones field by field."""
    old_names = {e["id"]: e["name"] for e in old}
    new_names = {e["id"]: e["name"] for e in new}
    out: list[EntryChange] = []
    for diff in diff_entries(old, new):
        names = old_names if diff.kind == "removed" else new_names
        entry = feeds.PublicEntry(diff.entry, 0, names.get(str(diff.entry.get("parent_id") or ""), ""))
        fields = [FieldChange(field_label(name), _shown(name, diff.before or {}, old_names),
                              _shown(name, diff.entry, new_names)) for name in diff.fields]
        out.append(EntryChange(diff.kind, entry, fields))
    return out


# ---------------------------------------------------------------- routes

async def list_page(request: Request) -> Response:
    day, as_of = public_cache.as_of_day(request.query_params, utcnow().date())
    vendor = vendor_display_name(request)
    latest = await registry.latest_number(db(request))

    async def build(session: AsyncSession) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
        state = await feeds.public_list(session, day=day, latest=latest)
        return _page("subprocessors/public/index.html", vendor, {
            "state": state, "day": day, "as_of": as_of, "today": utcnow().date(),
            "query": f"?as_of={day.isoformat()}" if as_of else "",
            "statuses": statuses(state.versions, state.in_force, day),
            "upcoming": [(v, [feeds.change_json(c) for c in v.changes]) for v in state.upcoming],
        }), HTML, ()

    return await _answer(request, latest=latest, day=day, build=build)


async def version_page(request: Request) -> Response:
    session = db(request)
    latest = await registry.latest_number(session)
    number = _version_number(request.path_params["number"], latest)
    today = utcnow().date()
    vendor = vendor_display_name(request)

    async def build(session: AsyncSession) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
        version = await registry.version_by_number(session, number)
        versions = await feeds.version_index(session, latest)
        in_force = next((v for v in reversed(versions) if v.effective_date <= today), None)
        since = feeds.listed_since(versions, number)
        return _page("subprocessors/public/version.html", vendor, {
            "version": version, "latest": latest, "status": statuses(versions, in_force, today)[number],
            "entries": feeds.public_entries(registry.entries_of(version), since),
            "changes": [feeds.change_json(c) for c in version.changes],
        }), HTML, ()

    return await _answer(request, latest=latest, day=today, build=build)


def _number(raw: str) -> int | None:
    """``raw`` as a version number (digits only), or None."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


def _version_number(raw: str, latest: int) -> int:
    """``raw`` as the number of a published version, or 404 (versions are numbered 1 to the newest)."""
    number = _number(raw)
    if number is None or not 1 <= number <= latest:
        raise NotFound("There is no such version of the sub-processor list." + (
            f" The newest is version {latest}." if latest else " None has been published yet."))
    return number


async def diff_page(request: Request) -> Response:
    session = db(request)
    latest = await registry.latest_number(session)
    raw_from = (request.query_params.get("from") or "").strip()
    raw_to = (request.query_params.get("to") or "").strip()
    old_number, new_number = _number(raw_from), _number(raw_to)
    problem, status = "", 400
    if not raw_from or not raw_to:
        problem = "Choose the two versions to compare, e.g. /subprocessors/diff?from=1&to=2."
    elif old_number is None or new_number is None:
        problem = "from and to must be version numbers, e.g. from=1&to=2."
    elif not (1 <= old_number <= latest and 1 <= new_number <= latest):
        missing = old_number if not 1 <= old_number <= latest else new_number
        problem = f"There is no version {missing}: " + (f"the newest is version {latest}." if latest
                                                        else "none has been published yet.")
        status = 404
    if problem or old_number is None or new_number is None:
        return render(request, "subprocessors/public/diff.html", {
            "error": problem, "latest": latest, "raw_from": raw_from[:10], "raw_to": raw_to[:10]}, status=status)
    vendor = vendor_display_name(request)

    async def build(session: AsyncSession) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
        old = await registry.version_by_number(session, old_number)
        new = await registry.version_by_number(session, new_number)
        changes = differences(registry.entries_of(old), registry.entries_of(new))
        return _page("subprocessors/public/diff.html", vendor, {
            "error": None, "latest": latest, "raw_from": str(old_number), "raw_to": str(new_number),
            "old": old, "new": new, "added": [c for c in changes if c.kind == "added"],
            "removed": [c for c in changes if c.kind == "removed"],
            "changed": [c for c in changes if c.kind == "changed"],
        }), HTML, ()

    return await _answer(request, latest=latest, day=utcnow().date(), build=build)


async def list_json(request: Request) -> Response:
    day, _as_of = public_cache.as_of_day(request.query_params, utcnow().date())
    vendor, base_url = vendor_display_name(request), settings_of(request).base_url
    latest = await registry.latest_number(db(request))

    async def build(session: AsyncSession) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
        state = await feeds.public_list(session, day=day, latest=latest)
        document = feeds.list_document(state, vendor=vendor, base_url=base_url)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), "application/json", ()

    return await _answer(request, latest=latest, day=day, build=build)


async def list_atom(request: Request) -> Response:
    today = utcnow().date()
    vendor, base_url = vendor_display_name(request), settings_of(request).base_url
    latest = await registry.latest_number(db(request))

    async def build(session: AsyncSession) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
        versions = await feeds.version_index(session, latest)
        start_of_day = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
        return (feeds.atom_feed(versions, vendor=vendor, base_url=base_url, updated=start_of_day),
                "application/atom+xml", ())

    return await _answer(request, latest=latest, day=today, build=build)


async def list_csv(request: Request) -> Response:
    day, _as_of = public_cache.as_of_day(request.query_params, utcnow().date())
    latest = await registry.latest_number(db(request))

    async def build(session: AsyncSession) -> tuple[bytes, str, tuple[tuple[str, str], ...]]:
        state = await feeds.public_list(session, day=day, latest=latest)
        disposition = f'attachment; filename="{feeds.csv_filename(day)}"'
        return feeds.list_csv(state).encode(), "text/csv", (("Content-Disposition", disposition),)

    return await _answer(request, latest=latest, day=day, build=build)


routes: list[BaseRoute] = [
    Route("/subprocessors", list_page, methods=["GET"]),
    Route("/subprocessors.json", list_json, methods=["GET"]),
    Route("/subprocessors.atom", list_atom, methods=["GET"]),
    Route("/subprocessors.csv", list_csv, methods=["GET"]),
    Route("/subprocessors/diff", diff_page, methods=["GET"]),
    Route("/subprocessors/versions/{number}", version_page, methods=["GET"]),
]
