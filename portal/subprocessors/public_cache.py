"""Serving the public sub-processor answers from memory: the rendered bytes, and a fast path in front of the app.

The public list is read far more often than it changes, and every visitor gets the same bytes (the pages hold no
per-visitor token: their subscribe box is a plain GET form). So:

- rendered answers are kept by key (the newest version number, the day the answer is for, path and query); a
  publish or a new day makes new keys, and the old answers age out;
- ``PublicAnswerMiddleware`` answers a GET for a cached key before the session, CSRF and database layers run
  (the security headers are still added around it); a miss goes through the app, which renders and caches;
- the newest version number is read from the database at most once a ``RECHECK`` seconds per process, and at
  once after a publish in this process (``version_published`` runs after its commit). Another instance therefore
  shows a new version at most ``RECHECK`` seconds late; the database stays the only source of truth, and nothing
  another instance needs is kept here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime, parsedate_to_datetime
from functools import cached_property
from urllib.parse import parse_qsl

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from portal.db import utcnow
from portal.errors import InvalidInput
from portal.subprocessors.models import ListVersion

RECHECK = 1.0  # seconds a process trusts the newest version number it read
CACHE_CONTROL = "public, max-age=60"
PUBLIC_PATH = re.compile(r"^/subprocessors(\.json|\.atom|\.csv|/diff|/versions/\d{1,9})?$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_generation = 0  # bumped by every publish committed in this process


async def version_published() -> None:
    """After a publish commits: this process stops trusting the number it read before."""
    global _generation
    _generation += 1


class PublicAnswers:
    """The cache of rendered answers and this process's view of the newest version number."""

    def __init__(self, engine: AsyncEngine, size: int = 64) -> None:
        self.engine = engine
        self.cache = AnswerCache(size)
        self._latest = 0
        self._read_at = float("-inf")
        self._generation = -1

    async def latest_number(self) -> int:
        if self._generation == _generation and time.monotonic() - self._read_at < RECHECK:
            return self._latest
        generation = _generation
        async with self.engine.connect() as connection:
            latest = await connection.scalar(select(func.coalesce(func.max(ListVersion.number), 0)))
        self.saw(int(latest or 0), generation)
        return self._latest

    def saw(self, latest: int, generation: int | None = None) -> None:
        """Record the newest number a request read (the app's own query keeps this view fresh too)."""
        self._latest, self._read_at = latest, time.monotonic()
        self._generation = _generation if generation is None else generation


def answers_of(app_state: object) -> PublicAnswers:
    answers = getattr(app_state, "public_answers", None)
    if not isinstance(answers, PublicAnswers):
        raise RuntimeError("create_app sets app.state.public_answers")
    return answers


def request_day(as_of: str, today: dt.date) -> dt.date | None:
    """The day an answer is for: ``as_of`` when given (None when malformed), else today."""
    if not as_of:
        return today
    if not DAY.match(as_of):
        return None
    try:
        return dt.date.fromisoformat(as_of)
    except ValueError:
        return None


def as_of_day(query: Mapping[str, str], today: dt.date) -> tuple[dt.date, str]:
    """The day a public answer is for and the ``as_of`` it was asked with ('' for today); a clear 400 when the
    date is malformed."""
    raw = (query.get("as_of") or "").strip()
    day = request_day(raw, today)
    if day is None:
        message = f"as_of must be a date written YYYY-MM-DD, such as {today.isoformat()}."
        raise InvalidInput(message, fields={"as_of": message})
    return day, raw


def answer_key(*, latest: int, day: dt.date, path: str, query: str) -> str:
    return f"{latest}|{day.isoformat()}|{path}?{query}"


# ---------------------------------------------------------------- rendered answers

@dataclass(frozen=True)
class Answer:
    body: bytes
    media_type: str
    last_modified: dt.datetime
    headers: tuple[tuple[str, str], ...] = ()

    @cached_property
    def last_modified_header(self) -> str:
        return format_datetime(self.last_modified, usegmt=True)


class AnswerCache:
    """The ``size`` most recently used answers by key. A publish or a new day makes new keys, so stale answers are
    never looked up again and simply age out."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[str, Answer] = OrderedDict()

    def get(self, key: str) -> Answer | None:
        answer = self._items.get(key)
        if answer is not None:
            self._items.move_to_end(key)
        return answer

    def put(self, key: str, answer: Answer) -> None:
        self._items[key] = answer
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def etag_for(key: str) -> str:
    """A strong ETag for the answer ``key`` names (every visitor gets the same bytes for a key)."""
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


# ---------------------------------------------------------------- conditional answers

def _matches(header: str, etag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2)."""
    if header.strip() == "*":
        return True
    return etag in (tag.strip().removeprefix("W/") for tag in header.split(","))


def not_modified(headers: Headers, etag: str, last_modified: dt.datetime | None) -> bool:
    """RFC 9110 13.2.2: If-None-Match decides when present; If-Modified-Since only without it."""
    none_match = headers.get("if-none-match")
    if none_match is not None:
        return _matches(none_match, etag)
    since = headers.get("if-modified-since")
    if not since or last_modified is None:
        return False
    try:
        moment = parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return last_modified <= moment


def respond(answer: Answer, key: str, headers: Headers) -> Response:
    """``answer``, or 304 when the client already holds it."""
    out = {"ETag": etag_for(key), "Cache-Control": CACHE_CONTROL, "Last-Modified": answer.last_modified_header}
    if not_modified(headers, out["ETag"], answer.last_modified):
        return Response(status_code=304, headers=out)
    return Response(answer.body, media_type=answer.media_type, headers={**out, **dict(answer.headers)})


class PublicAnswerMiddleware:
    """Answers public sub-processor GETs from the cache before the session and database layers run."""

    def __init__(self, app: ASGIApp, *, answers: PublicAnswers) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or not PUBLIC_PATH.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        query = scope["query_string"].decode("latin-1")
        as_of = next((v for k, v in parse_qsl(query, keep_blank_values=True) if k == "as_of"), "")
        day = request_day(as_of.strip(), utcnow().date())
        answer = None
        if day is not None:
            key = answer_key(latest=await self.answers.latest_number(), day=day, path=scope["path"], query=query)
            answer = self.answers.cache.get(key)
        if answer is None:  # not rendered yet, or a request the app must refuse with a message
            await self.app(scope, receive, send)
            return
        await respond(answer, key, Headers(scope=scope))(scope, receive, send)
