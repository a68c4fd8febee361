"""CSV and JSON exports of the audit trail, written as the events are read.

Invariants:
- an export carries every field the hash covers plus ``prev_hash`` and ``hash``, so it can be re-verified
  offline: ``hash = sha256(prev_hash + canonical_json(event))`` where ``canonical_json`` sorts keys, uses no
  spaces and keeps non-ASCII characters; an unfiltered export by vendor staff is the whole chain;
- a CSV cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return) is written with a leading ``'``; the JSON export carries every value unchanged;
- the download's file name is built from fixed words and the time, never from user input.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from portal.audit.queries import EXPORT_COLUMNS
from portal.audit.service import canonical_json

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
HASH_RULE = ("hash = sha256(prev_hash + canonical JSON of {seq, id, occurred_at, org_id, actor_id, actor, "
             "tag, subject_type, subject_id, data, ip}); canonical JSON sorts keys, has no spaces and keeps "
             "non-ASCII characters; the first event's prev_hash is 64 zeros")


def safe_cell(value: str) -> str:
    """``value`` for a CSV cell, with a leading ``'`` when a spreadsheet would take it for a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "data":
        return safe_cell(canonical_json(value))
    return safe_cell(str(value))


async def csv_chunks(events: AsyncIterator[Mapping[str, Any]]) -> AsyncIterator[str]:
    """A header line, then one line per event (``data`` as canonical JSON)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    async for event in events:
        writer.writerow([_cell(column, event[column]) for column in EXPORT_COLUMNS])
        if buffer.tell() > 64_000:
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


async def json_chunks(events: AsyncIterator[Mapping[str, Any]], *, exported_at: dt.datetime,
                      filters: Mapping[str, str]) -> AsyncIterator[str]:
    """One JSON document: when, with which filters, how hashes are computed, and the events in chain order."""
    head = json.dumps({"exported_at": exported_at.isoformat(), "filters": dict(filters),
                       "hash_rule": HASH_RULE}, ensure_ascii=False)
    yield head[:-1] + ', "events": ['
    separator = "\n"
    async for event in events:
        yield separator + json.dumps({column: event[column] for column in EXPORT_COLUMNS}, ensure_ascii=False)
        separator = ",\n"
    yield "\n]}\n"


def download_name(extension: str, now: dt.datetime) -> str:
    return f"audit-events-{now.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.{extension}"
