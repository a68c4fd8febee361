"""A client's own record of an incident, to download for its Art. 33(5) documentation: JSON and a DOCX of the same.

Invariants:
- the record holds what the client was told and when: the incident as the vendor recorded it (times, natures,
  source, status and closure) and the client's own notices in order with their receipts; never the vendor's
  internal notes, never who at the vendor did what, never another client's notices, names or figures;
- every notice carries ``notified_at`` and the 72-hour reference, saying that the client determines when it became
  aware (legal requirement 45), and what changed since the previous one (requirement 46);
- the DOCX is made from the JSON record alone, so it says nothing the JSON does not; the same record gives the same
  bytes (core properties and zip entry times are the export time).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import docx

from portal import docx_records
from portal.breaches import content as notice_content
from portal.breaches.incidents import SOURCES
from portal.breaches.models import BreachNotice, Closure, Incident, Nature
from portal.breaches.notices import Receipt
from portal.db import utcnow

FORMAT = "dpa-portal/incident-record/1"
DOCX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
SA_REFERENCE_HOURS = 72
SA_REFERENCE_NOTE = ("A reference only: 72 hours after this notice was sent. You determine when you became aware "
                     "of the breach, and your own deadline towards your supervisory authority runs from then.")
TITLE = "Personal data breach record"


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).isoformat() if value is not None else None


def incident_record(incident: Incident, notices: Sequence[BreachNotice], receipts: Mapping[uuid.UUID, Receipt],
                    org_name: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The plain-JSON record of ``incident`` for the client named ``org_name``: the incident and that client's
    notices (all of one client, as ``notices.client_incident`` gives them) in order with their receipts."""
    if len({n.org_id for n in notices}) > 1 or any(n.incident_id != incident.id for n in notices):
        raise ValueError("an incident record holds the notices of one client about this incident only")
    exported = now or utcnow()
    return {
        "format": FORMAT,
        "exported_at": _iso(exported),
        "client": org_name,
        "incident": {
            "reference": incident.reference,
            "title": incident.title,
            "summary": incident.summary,
            "aware_at": _iso(incident.aware_at),
            "detected_at": _iso(incident.detected_at),
            "occurred_at": _iso(incident.occurred_at),
            "natures": list(incident.natures),
            "source": incident.source,
            "subprocessor": incident.subprocessor_name if incident.from_subprocessor else None,
            "subprocessor_notified_at": _iso(incident.subprocessor_notified_at) if incident.from_subprocessor
            else None,
            "contact_point": incident.contact_point,
            "status": incident.status.value,
            "closure": incident.closure.value if incident.closure else None,
            "closure_rationale": incident.closure_rationale or None,
            "closed_at": _iso(incident.closed_at),
        },
        "notices": [_notice(n, receipts.get(n.id)) for n in sorted(notices, key=lambda n: n.seq)],
    }


def _notice(notice: BreachNotice, receipt: Receipt | None) -> dict[str, Any]:
    names = [*notice_content.NAMES, notice_content.ART34_DRAFT]
    return {
        "seq": notice.seq,
        "phase": notice.phase.value,
        "notified_at": _iso(notice.notified_at),
        "reference_sa_deadline": _iso(notice.notified_at + dt.timedelta(hours=SA_REFERENCE_HOURS)),
        "reference_sa_deadline_note": SA_REFERENCE_NOTE,
        "content": {name: notice.content[name] for name in names if name in notice.content},
        "changes": {name: dict(change) for name, change in notice.changes.items()},
        "delivered_at": _iso(receipt.delivered_at if receipt else None),
        "acknowledged_at": _iso(receipt.acknowledged_at if receipt else notice.acknowledged_at),
        "acknowledged_by": notice.acknowledged_by or None,
    }


# ---------------------------------------------------------------- the DOCX

def _time(value: object, absent: str = "Not known") -> str:
    if not isinstance(value, str) or not value:
        return absent
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _text(value: object, absent: str = "") -> str:
    return absent if value is None or value == "" else str(value)


def _label(enum_type: type[Nature] | type[Closure], value: object) -> str:
    try:
        return enum_type(str(value)).label
    except ValueError:
        return _text(value)


def incident_record_docx(record: Mapping[str, Any]) -> bytes:
    """A readable DOCX of ``record`` (from ``incident_record``): the incident, then a table per notice in order."""
    incident, client = record["incident"], _text(record.get("client"))
    exported = _time(record.get("exported_at"))
    document = docx.Document()
    document.add_heading(f"{TITLE}: {_text(incident.get('reference'))}", level=0)
    document.add_paragraph(
        f"The processor's record of this incident and of every notice {client} received about it, in order, "
        f"exported on {exported} for {client}'s own documentation of personal data breaches (Art. 33(5) GDPR).")

    document.add_heading("Incident", level=1)
    from_subprocessor = incident.get("source") == "subprocessor"
    rows: list[tuple[str, object]] = [
        ("Reference", incident.get("reference")),
        ("Title", incident.get("title")),
        ("What happened", incident.get("summary")),
        ("The processor became aware (UTC)", _time(incident.get("aware_at"))),
        ("Detected (UTC)", _time(incident.get("detected_at"))),
        ("Occurred (UTC)", _time(incident.get("occurred_at"))),
        ("Nature", "; ".join(_label(Nature, n) for n in incident.get("natures") or [])),
        ("Source", SOURCES.get(_text(incident.get("source")), _text(incident.get("source")))),
    ]
    if from_subprocessor:
        rows += [("Sub-processor", incident.get("subprocessor")),
                 ("The sub-processor told the processor (UTC)", _time(incident.get("subprocessor_notified_at")))]
    rows += [("Contact point", incident.get("contact_point")),
             ("Status", "Closed" if incident.get("status") == "closed" else "Open")]
    if incident.get("status") == "closed":
        rows += [("Closed (UTC)", _time(incident.get("closed_at"))),
                 ("How it ended", _label(Closure, incident.get("closure"))),
                 ("Why it was closed", incident.get("closure_rationale"))]
    docx_records.facts(document, rows)

    document.add_heading("Notices", level=1)
    sent = record.get("notices") or []
    document.add_paragraph(
        f"{len(sent)} notice{'s' if len(sent) != 1 else ''} to {client}, in the order sent. Each gives a reference "
        "time 72 hours after it was sent: you determine when you became aware of the breach, and your own deadline "
        "towards your supervisory authority runs from then.")
    for notice in sent:
        document.add_heading(f"Notice {_text(notice.get('seq'))} ({_text(notice.get('phase'))})", level=2)
        fields = notice.get("content") or {}
        docx_records.facts(document, [
            ("Sent (UTC)", _time(notice.get("notified_at"))),
            ("Reference: 72 hours later (UTC)", f"{_time(notice.get('reference_sa_deadline'))}. "
                                                f"{_text(notice.get('reference_sa_deadline_note'))}"),
            *[(notice_content.label_of(name), value) for name, value in fields.items()],
            ("First delivered (UTC)", _time(notice.get("delivered_at"), "Not delivered")),
            ("Acknowledged (UTC)", _time(notice.get("acknowledged_at"), "Not acknowledged")),
            ("Acknowledged by", _text(notice.get("acknowledged_by"), "-")),
        ])
        changes = notice.get("changes") or {}
        if notice.get("seq") == 1:
            document.add_paragraph("The first notice: every field above is new.")
        elif changes:
            document.add_paragraph("What changed since the previous notice:")
            docx_records.table(document, ("Field", "Before", "After"),
                   [(notice_content.label_of(name), _text(change.get("before"), "(none)"),
                     _text(change.get("after"), "(none)")) for name, change in changes.items()])

    return docx_records.finished(document, title=f"{TITLE}: {_text(incident.get('reference'))}", author="",
                                 subject=client, moment=_parsed(record.get("exported_at")))


def _parsed(value: object) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value).astimezone(dt.UTC) if isinstance(value, str) else None
    except ValueError:
        return None


