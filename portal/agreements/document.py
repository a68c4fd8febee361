"""The agreement's document: the render context from the vendor's profile, the client's details, the agreement's
terms, the sub-processor list in force and (when both parties have signed) the signatures; and reading a rendered
DOCX back as blocks for the browser.

Invariants:
- every catalog name has a value in the context, so a template can never render with a gap; a value not known yet
  says so in words (signatures before signing, AI commitments before the ledger has a version);
- Annex V is the AI commitments version applying to the client on the same day (a version that widens the
  client's only once it accepted it), one row per data class, recorded in ``bindings`` with its hash like the
  sub-processor list;
- Annex IV is the sub-processor list in force on the day the document is rendered, chain included, and the context
  records which version and hash it was (``bindings``) so the evidence can name them;
- what the browser shows is read from the very DOCX bytes whose hash is signed, not from the context.
"""

from __future__ import annotations

import copy
import datetime as dt
import io
import zipfile
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.agreements.models import Agreement, Authorisation, Signature
from portal.ai_commitments import standing
from portal.ai_commitments.document import DATA_CLASSES, TRAINING_USES
from portal.dpa import fields
from portal.dpa.fields import FIELDS
from portal.dpa.models import TemplateVersion
from portal.dpa.profile import missing, profile_values
from portal.dpa.render import render_docx_async
from portal.dpa.wordml import W as W_NS
from portal.dpa.wordml import paragraph_text, parse_xml
from portal.errors import InvalidInput
from portal.settings import Settings
from portal.subprocessors import registry
from portal.subprocessors.feeds import countries, mechanism_name, public_entries
from portal.subprocessors.geography import country_name

PENDING = "(pending)"
HASH_NOTE = "recorded in the certificate of completion and the evidence record of this agreement"


@dataclass(frozen=True)
class Rendered:
    docx: bytes
    bindings: dict[str, Any]  # template, sub-processor list and AI commitments versions with their hashes
    context: dict[str, Any]  # every value the template was rendered with


def _annex_iv_rows(entries: list[dict[str, Any]], vendor_name: str) -> list[dict[str, str]]:
    rows = []
    for item in public_entries(entries):
        entry = item.entry
        contact = ", ".join(str(entry.get(k) or "") for k in ("contact_name", "contact_position", "contact_email")
                            if entry.get(k))
        mechanism = mechanism_name(str(entry.get("transfer_mechanism") or ""))
        places = countries(entry.get("locations") or [], mechanism)
        bases = sorted({c.basis for c in places if c.basis})
        transfer = "; ".join(bases) if bases else "Not needed: processing within the EEA"
        if entry.get("transfer_details"):
            transfer += f" ({entry['transfer_details']})"
        rows.append({
            "name": str(entry.get("name") or ""), "legal_entity": str(entry.get("legal_entity") or ""),
            "address": str(entry.get("address") or ""), "contact": contact,
            "processing": f"{entry.get('purpose') or ''}: {entry.get('processing') or ''}".strip(": "),
            "locations": ", ".join(f"{c.name} ({c.code})" for c in places),
            "transfer_mechanism": transfer, "engaged_by": item.parent_name or vendor_name,
        })
    return rows


def _retention(days: Any) -> str:
    return "Not kept" if days == "none" else f"{days} days"


def annex_v_rows(document: dict[str, Any]) -> list[dict[str, str]]:
    """One Annex V row per customer data class of a commitments version, in words."""
    rows = []
    for key, label in DATA_CLASSES.items():
        data = document["data_classes"][key]
        models = f" ({data['training_models']})" if data.get("training_models") else ""
        providers = "; ".join(
            f"{p['name']}: " + ("zero data retention" if p["zero_data_retention"] else _retention(p["retention_days"]))
            + (f", abuse-monitoring logs {p['abuse_monitoring_days']} days" if p["abuse_monitoring_days"] else "")
            for p in data["providers"]) or "Not sent to model providers"
        rows.append({"data_class": label, "training_use": TRAINING_USES[data["training_use"]] + models,
                     "vendor_retention": _retention(data["vendor_retention_days"]), "provider_retention": providers,
                     "human_review": data["human_review"],
                     "locations": ", ".join(f"{country_name(c)} ({c})" for c in data["locations"])})
    return rows


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for dotted, value in flat.items():
        *path, leaf = dotted.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def signature_values(client: Signature | None, vendor: Signature | None) -> dict[str, str]:
    values: dict[str, str] = {}
    for prefix, signature in (("client", client), ("vendor", vendor)):
        values[f"signatures.{prefix}_name"] = signature.name if signature else PENDING
        values[f"signatures.{prefix}_title"] = signature.title if signature else PENDING
        values[f"signatures.{prefix}_date"] = signature.signed_at.date().isoformat() if signature else PENDING
    return values


async def render_agreement(session: AsyncSession, *, agreement: Agreement, template: TemplateVersion,
                           settings: Settings, day: dt.date, client: Signature | None = None,
                           vendor: Signature | None = None) -> Rendered:
    """Render ``agreement`` from ``template`` with everything in force on ``day`` (and the signatures, if given)."""
    profile = await profile_values(session)
    if gaps := missing(profile):
        raise InvalidInput("The vendor has not completed its own details for agreements yet (" +
                           ", ".join(f.name for f in gaps) + "); its legal team fills them in under DPA templates.")
    version = await registry.in_force_on(session, day)
    party = await session.get_one(Organisation, agreement.org_id)
    commitments = await standing.applying_to(session, party, day)  # the client's own: widening needs its acceptance
    vendor_name = profile["vendor.name"]
    flat: dict[str, Any] = {**profile, **{k: v for k, v in agreement.details.items() if isinstance(v, str)}}
    flat |= {
        "agreement.reference": agreement.reference,
        "agreement.version_id": f"{vendor_name} data processing agreement, template version {template.number}",
        "agreement.document_hash": HASH_NOTE,
        "portal_url": settings.base_url,
        "notice_days": agreement.notice_days_or(settings.subprocessor_notice_days),
        "breach_target_hours": agreement.breach_target_hours_or(settings.breach_target_hours),
        "subprocessor_authorisation": Authorisation(agreement.subprocessor_authorisation).value,
        "subprocessor_list.version": version.number if version else "",
        "subprocessor_list.effective_date": version.effective_date.isoformat() if version else "",
        "subprocessor_list.sha256": version.sha256 if version else "",
        "ai_commitments.version": commitments.number if commitments else "",
        "ai_commitments.effective_date": commitments.effective_date.isoformat() if commitments and
        commitments.effective_date else "",
        "ai_commitments.sha256": commitments.sha256 if commitments else "",
        **signature_values(client, vendor),
    }
    scalars = [f.name for f in FIELDS if f.name.split(".")[0] not in {"sp", "commitment"}]
    if absent := [name for name in scalars if name not in flat]:
        raise InvalidInput("The agreement's details are incomplete: " + ", ".join(absent) + ".")
    context = _nest({name: flat[name] for name in scalars})
    context["subprocessors"] = _annex_iv_rows(registry.entries_of(version), vendor_name)
    context["ai_commitments"]["rows"] = annex_v_rows(commitments.document) if commitments else []
    assert set(fields.loop_bindings().values()) == {"subprocessors", "ai_commitments.rows"}
    docx = await render_docx_async(template.docx, context)
    bindings = {
        "template": {"id": str(template.id), "version": template.number, "sha256": template.sha256},
        "subprocessor_list": None if version is None else {
            "version": version.number, "sha256": version.sha256, "effective_date": version.effective_date.isoformat()},
        "ai_commitments": None if commitments is None else {
            "version": commitments.number, "sha256": commitments.sha256,
            "effective_date": commitments.effective_date.isoformat() if commitments.effective_date else None},
    }
    return Rendered(docx, bindings, context)


async def render_executed(template: TemplateVersion, context: dict[str, Any], client: Signature,
                          vendor: Signature) -> bytes:
    """The signed document again, from the same values, with both signatures in Annex I."""
    signed = copy.deepcopy(context)
    for dotted, value in signature_values(client, vendor).items():
        _, leaf = dotted.split(".")
        signed["signatures"][leaf] = value
    return await render_docx_async(template.docx, signed)


# ---------------------------------------------------------------- reading a DOCX back for the browser

@dataclass(frozen=True)
class Block:
    kind: str  # "title", "heading1", "heading2", "heading3", "paragraph" or "table"
    text: str = ""
    rows: tuple[tuple[str, ...], ...] = ()


_W = f"{{{W_NS}}}"
_STYLES = {"title": "title", "heading1": "heading1", "heading2": "heading2", "heading3": "heading3",
           "listbullet": "bullet"}


def _style(paragraph: Any) -> str:
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    value = (style.get(f"{_W}val") if style is not None else "") or ""
    return _STYLES.get(value.lower().replace(" ", ""), "paragraph")


def _cell_text(cell: Any) -> str:
    return "\n".join(paragraph_text(p) for p in cell.iter(f"{_W}p"))


def document_blocks(docx: bytes) -> list[Block]:
    """The body of ``docx`` in reading order: paragraphs with their heading level, and tables as rows of cells."""
    with zipfile.ZipFile(io.BytesIO(docx)) as archive:
        root = parse_xml(archive.read("word/document.xml"))
    body = root.find(f"{_W}body")
    blocks: list[Block] = []
    for child in body if body is not None else []:
        if child.tag == f"{_W}p":
            text = paragraph_text(child)
            if text.strip():
                blocks.append(Block(_style(child), text))
        elif child.tag == f"{_W}tbl":
            rows = tuple(tuple(_cell_text(cell) for cell in row.iter(f"{_W}tc")) for row in child.iter(f"{_W}tr"))
            blocks.append(Block("table", rows=rows))
    return blocks
