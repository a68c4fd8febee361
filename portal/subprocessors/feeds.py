"""The public sub-processor list in every form anyone may read: the data behind the pages, the JSON document (its
schema is in ``feed_schema``), the Atom feed and the CSV export. ``public_cache`` keeps the rendered answers.

Invariants:
- only published versions are read: drafts, clients' authorisations and who published never appear;
- the list as of a day is the version in force that day (versions take effect in order, at midnight UTC of their
  effective date); its upcoming changes are the versions announced by the end of that day that take effect later,
  so a past day shows what could be known then;
- an answer depends only on (the newest version number, the day it is for, its path and query) and the vendor's
  name. Versions are immutable, so that key names the answer: it is the ETag and the cache key, every instance
  derives it from the database alike, and the in-process cache only saves rendering work that any instance can
  redo (a renamed vendor shows in the cached answers from the next publish or day on).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
import xml.etree.ElementTree as ET  # only builds XML, never parses input
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from portal.audit.export import safe_cell
from portal.subprocessors import registry
from portal.subprocessors.entries import FIELD_NAMES, FIELDS, Entry
from portal.subprocessors.geography import TRANSFER_MECHANISMS, country_name, transfer_basis
from portal.subprocessors.models import KIND_LABELS, ChangeKind, ListVersion

LIST_FIELDS = frozenset({"data_categories", "locations"})


# ---------------------------------------------------------------- the list as of a day

@dataclass(frozen=True)
class Country:
    code: str
    name: str
    basis: str  # what lets data go there: "EEA", an adequacy decision, or the entry's transfer mechanism


def countries(codes: Iterable[str], mechanism: str) -> tuple[Country, ...]:
    return tuple(Country(code, country_name(code), transfer_basis(code) or mechanism) for code in codes)


def mechanism_name(key: str) -> str:
    return TRANSFER_MECHANISMS.get(key, key)


@dataclass(frozen=True)
class PublicEntry:
    """An entry of a published list, where it sits in the chain, and the version that put it on the list."""

    entry: Entry
    depth: int
    parent_name: str
    since: ListVersion | None = None

    @property
    def mechanism(self) -> str:
        return mechanism_name(str(self.entry.get("transfer_mechanism") or ""))

    @property
    def countries(self) -> tuple[Country, ...]:
        return countries(self.entry.get("locations") or [], self.mechanism)


def public_entries(entries: list[Entry], since: Mapping[str, ListVersion] | None = None) -> list[PublicEntry]:
    """``entries`` with each sub-sub-processor under its parent (legal requirement 29)."""
    names = {e["id"]: e["name"] for e in entries}
    return [PublicEntry(entry, depth, names.get(entry.get("parent_id") or "", ""), (since or {}).get(entry["id"]))
            for entry, depth in registry.nested(entries)]


@dataclass(frozen=True)
class PublicList:
    day: dt.date
    versions: list[ListVersion]  # every version up to the newest, oldest first, without their documents
    in_force: ListVersion | None
    entries: list[PublicEntry]

    @property
    def upcoming(self) -> list[ListVersion]:
        """Versions announced by the end of ``day`` that take effect after it, oldest first."""
        return [v for v in self.versions
                if v.effective_date > self.day and v.announced_at.astimezone(dt.UTC).date() <= self.day]

    @property
    def history(self) -> list[ListVersion]:
        return list(reversed(self.versions))

    @property
    def latest(self) -> ListVersion | None:
        return self.versions[-1] if self.versions else None


async def version_index(session: AsyncSession, latest: int) -> list[ListVersion]:
    """Every version up to number ``latest``, oldest first, without the documents: history, upcoming changes and
    the feed need only metadata and changes, and 50 versions of 200 entries would be megabytes to parse."""
    rows = await session.execute(select(ListVersion).where(ListVersion.number <= latest)
                                 .options(defer(ListVersion.document, raiseload=True)).order_by(ListVersion.number))
    return list(rows.scalars())


def listed_since(versions: Iterable[ListVersion], upto: int) -> dict[str, ListVersion]:
    """For each entry id, the version (up to number ``upto``) that added it or brought it in as a replacement."""
    found: dict[str, ListVersion] = {}
    for version in versions:
        if version.number > upto:
            break
        for item in version.changes:
            if item.get("kind") in (ChangeKind.ADDED.value, ChangeKind.REPLACED.value):
                found[str(item.get("entry_id"))] = version
    return found


async def public_list(session: AsyncSession, *, day: dt.date, latest: int) -> PublicList:
    """The list in force on ``day`` among the versions up to number ``latest``."""
    in_force = await registry.in_force_on(session, day)  # loaded first: the only document read
    versions = await version_index(session, latest)
    since = listed_since(versions, in_force.number) if in_force is not None else {}
    return PublicList(day, versions, in_force, public_entries(registry.entries_of(in_force), since))


async def announced_at(session: AsyncSession, number: int) -> dt.datetime | None:
    """When version ``number`` was announced (None before the first version)."""
    found = await session.scalar(select(ListVersion.announced_at).where(ListVersion.number == number))
    return found if isinstance(found, dt.datetime) else None


def modified_at(latest_announced: dt.datetime | None, day: dt.date, now: dt.datetime) -> dt.datetime:
    """Last-Modified of an answer for ``day``: the newest announcement or the start of ``day`` (when a version may
    have come into force), whichever is later, never in the future; whole seconds, as HTTP dates have."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    moment = min(max(latest_announced or start, start), now)
    return moment.astimezone(dt.UTC).replace(microsecond=0)


# ---------------------------------------------------------------- /subprocessors.json

def version_summary(version: ListVersion, base_url: str) -> dict[str, Any]:
    return registry.version_json(version, base_url)


def _country_json(country: Country) -> dict[str, str]:
    return {"code": country.code, "name": country.name, "transfer_basis": country.basis}


def entry_json(item: PublicEntry) -> dict[str, Any]:
    """Every register field of the entry (absent ones empty), then what the JSON adds to them."""
    entry = item.entry
    out: dict[str, Any] = {"id": str(entry["id"])}
    for name in FIELD_NAMES:
        value = entry.get(name)
        if name in LIST_FIELDS:
            out[name] = [str(v) for v in value or []]
        elif name == "ai_model_provider":
            out[name] = bool(value)
        else:
            out[name] = "" if value is None else str(value)
    out.update({
        "transfer_mechanism_name": item.mechanism,
        "countries": [_country_json(c) for c in item.countries],
        "depth": item.depth,
        "parent_name": item.parent_name,
        "listed_since": item.since.number if item.since is not None else None,
    })
    return out


def change_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """One change as its version recorded it (``entries.notice_item``), in a fixed shape."""
    mechanism = str(item.get("transfer_mechanism") or "")  # recorded as the mechanism's name
    return {
        "kind": str(item.get("kind", "")), "entry_id": str(item.get("entry_id", "")),
        "name": str(item.get("name", "")), "legal_entity": str(item.get("legal_entity", "")),
        "address": str(item.get("address", "")), "contact": str(item.get("contact", "")),
        "purpose": str(item.get("purpose", "")), "processing": str(item.get("processing", "")),
        "data_categories": [str(v) for v in item.get("data_categories") or []],
        "locations": [str(v) for v in item.get("locations") or []],
        "countries": [_country_json(c) for c in countries(item.get("locations") or [], mechanism)],
        "transfer_mechanism_name": mechanism,
        "ai_model_provider": bool(item.get("ai_model_provider")),
        "changed_fields": [str(v) for v in item.get("changed_fields") or []],
        "replaces": item.get("replaces"), "replaces_entry_id": item.get("replaces_entry_id"),
    }


def list_document(state: PublicList, *, vendor: str, base_url: str) -> dict[str, Any]:
    """``/subprocessors.json``: the list in force on ``state.day``, what is announced to come, and the history."""
    version = state.in_force
    return {
        "vendor": vendor,
        "as_of": state.day.isoformat(),
        "version": version.number if version else None,
        "sha256": version.sha256 if version else None,
        "announced_at": version.announced_at.astimezone(dt.UTC).isoformat() if version else None,
        "effective_date": version.effective_date.isoformat() if version else None,
        "url": f"{base_url}/subprocessors/versions/{version.number}" if version else None,
        "latest_version": state.latest.number if state.latest else 0,
        "entries": [entry_json(e) for e in state.entries],
        "upcoming": [{**version_summary(v, base_url), "summary": v.summary,
                      "changes": [change_json(c) for c in v.changes]} for v in state.upcoming],
        "history": [version_summary(v, base_url) for v in state.history],
        "links": {"html": f"{base_url}/subprocessors", "atom": f"{base_url}/subprocessors.atom",
                  "csv": f"{base_url}/subprocessors.csv"},
    }


# ---------------------------------------------------------------- /subprocessors.atom

ATOM = "http://www.w3.org/2005/Atom"


def _atom_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stable_id(name: str) -> str:
    """A URN that stays the same for the same thing on the same portal (RFC 4287 4.2.6)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, name).urn


def change_line(item: Mapping[str, Any]) -> str:
    """One change in a sentence, as the feed and the pages summarise it."""
    change = change_json(item)
    text = f"{KIND_LABELS.get(change['kind'], change['kind'])}: {change['name']}"
    if change["replaces"]:
        text += f" (replaces {change['replaces']})"
    if change["kind"] == ChangeKind.CHANGED.value and change["changed_fields"]:
        text += f", changed: {', '.join(change['changed_fields'])}"
    if change["purpose"]:
        text += f" - {change['purpose']}"
    if change["countries"]:
        text += "; locations: " + ", ".join(f"{c['name']} ({c['code']})" for c in change["countries"])
    if change["transfer_mechanism_name"]:
        text += f"; transfer mechanism: {change['transfer_mechanism_name']}"
    return text


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def atom_feed(versions: list[ListVersion], *, vendor: str, base_url: str, updated: dt.datetime) -> bytes:
    """Atom 1.0 (RFC 4287): one entry per published version, newest first."""
    feed = ET.Element("feed", xmlns=ATOM)  # children inherit the default namespace
    _sub(feed, "id", _stable_id(f"{base_url}/subprocessors.atom"))
    _sub(feed, "title", f"{vendor}: sub-processor list")
    _sub(feed, "subtitle", "Every published version of the list, with its changes and effective date.")
    _sub(feed, "updated", _atom_time(versions[-1].announced_at if versions else updated))
    _sub(_sub(feed, "author"), "name", vendor)
    _sub(feed, "link", rel="self", type="application/atom+xml", href=f"{base_url}/subprocessors.atom")
    _sub(feed, "link", rel="alternate", type="text/html", href=f"{base_url}/subprocessors")
    for version in reversed(versions):
        url = f"{base_url}/subprocessors/versions/{version.number}"
        entry = _sub(feed, "entry")
        _sub(entry, "id", _stable_id(f"{url}?sha256={version.sha256}"))
        _sub(entry, "title", f"Version {version.number}, effective {version.effective_date.isoformat()}")
        _sub(entry, "updated", _atom_time(version.announced_at))
        _sub(entry, "published", _atom_time(version.announced_at))
        _sub(entry, "link", rel="alternate", type="text/html", href=url)
        lines = [change_line(c) for c in version.changes]
        _sub(entry, "summary", f"{len(lines)} change{'s' if len(lines) != 1 else ''}, effective "
                               f"{version.effective_date.isoformat()}: " + "; ".join(
                                   f"{KIND_LABELS.get(str(c.get('kind')), '')}: {c.get('name', '')}"
                                   for c in version.changes))
        html = Markup("<p>Effective {}. SHA-256 {}.</p>").format(version.effective_date.isoformat(), version.sha256)
        if version.summary:
            html += Markup("<p>{}</p>").format(version.summary)
        html += Markup("<ul>") + Markup("").join(Markup("<li>{}</li>").format(line) for line in lines) \
            + Markup("</ul>")
        _sub(entry, "content", str(html), type="html")  # escaped once more by the XML serialiser, as type=html wants
    xml: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return xml


# ---------------------------------------------------------------- /subprocessors.csv

_CSV_FIELDS = [f for f in FIELDS if f.name != "parent_id"]
CSV_HEADER = ["List version", "In force from", "Chain level", "Engaged by", *(f.label for f in _CSV_FIELDS),
              "Countries", "Transfer basis", "Listed since version", "Entry id", "Parent entry id"]


def display(name: str, value: Any) -> str:
    """A register field as a reader (or a spreadsheet) shows it."""
    if name in LIST_FIELDS:
        return "; ".join(str(v) for v in value or [])
    if name == "ai_model_provider":
        return "Yes" if value else "No"
    if name == "transfer_mechanism":
        return mechanism_name(str(value or ""))
    return "" if value is None else str(value)


def list_csv(state: PublicList) -> str:
    """One row per entry in chain order (legal requirement 29), formula-safe for spreadsheets."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    version = state.in_force
    for item in state.entries:
        entry = item.entry
        row = [str(version.number) if version else "", version.effective_date.isoformat() if version else "",
               str(item.depth), item.parent_name,
               *(display(f.name, entry.get(f.name)) for f in _CSV_FIELDS),
               "; ".join(f"{c.name} ({c.code})" for c in item.countries),
               "; ".join(f"{c.code}: {c.basis}" for c in item.countries),
               str(item.since.number) if item.since else "", str(entry["id"]), str(entry.get("parent_id") or "")]
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()


def csv_filename(day: dt.date) -> str:
    return f"subprocessors-{day.isoformat()}.csv"
