"""What a breach notice says: the Art. 33(3) fields, the rules for unknowns, and what changed since the last one.

Invariants (legal requirements 42, 43, 46, 50):
- every field is required; the numbers, the likely consequences and the measures may say ``UNKNOWN`` ("not yet
  known, under investigation") in an initial or interim notice, never be blank, and a final notice needs them all;
- no risk rating is asked for: a processor notifies without first assessing the risk;
- the optional draft for informing data subjects (Art. 34), when given, mentions the contact point and addresses
  the likely consequences and the measures (it cannot be filled while those are still unknown);
- the changes of a notice are the fields whose text differs from the client's previous notice of the incident.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portal.breaches.models import UNKNOWN, Phase
from portal.errors import InvalidInput


@dataclass(frozen=True)
class ContentField:
    name: str
    label: str
    help: str
    may_be_unknown: bool
    long: bool = True
    max_length: int = 4000


FIELDS: tuple[ContentField, ...] = (
    ContentField("nature", "Nature of the breach", "What happened to the client's personal data: what was "
                 "disclosed, altered or lost, how, and when.", False),
    ContentField("categories", "Categories of data subjects and of personal data records", "e.g. 'Employees "
                 "of the client using the platform; names, email addresses and uploaded documents'.", False),
    ContentField("approximate_subjects", "Approximate number of data subjects", "For this client only.", True,
                 False, 200),
    ContentField("approximate_records", "Approximate number of personal data records", "For this client only.",
                 True, False, 200),
    ContentField("likely_consequences", "Likely consequences", "What may follow for the data subjects.", True),
    ContentField("measures", "Measures taken or proposed", "To address the breach, including measures to "
                 "mitigate its possible adverse effects.", True),
    ContentField("contact_point", "Contact point", "Who the client's team reaches for more information.", False,
                 False, 500),
)
ART34_DRAFT = "art34_draft"
NAMES = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}


def is_unknown(value: str) -> bool:
    return value.strip().casefold() == UNKNOWN.casefold()


def clean(raw: Mapping[str, str], *, phase: Phase) -> dict[str, str]:
    """The notice content to send, or ``InvalidInput`` naming every field that needs attention."""
    errors: dict[str, str] = {}
    content: dict[str, str] = {}
    for spec in FIELDS:
        value = raw.get(spec.name, "").strip()
        unknown_box = raw.get(f"{spec.name}_unknown", "") in {"yes", "on", "true", "1"}
        if unknown_box and spec.may_be_unknown and not value:
            value = UNKNOWN
        content[spec.name] = value
        if not value:
            errors[spec.name] = (f"{spec.label} cannot be blank: write what is known" +
                                 (f", or '{UNKNOWN}'." if spec.may_be_unknown else "."))
        elif is_unknown(value) and not spec.may_be_unknown:
            errors[spec.name] = f"{spec.label} must be stated, even in a first notice."
        elif is_unknown(value) and phase is Phase.FINAL:
            errors[spec.name] = f"A final notice states {spec.label.lower()}; it can no longer be unknown."
        elif len(value) > spec.max_length:
            errors[spec.name] = f"{spec.label} is longer than {spec.max_length} characters."
    draft = raw.get(ART34_DRAFT, "").strip()
    if draft:
        content[ART34_DRAFT] = draft
        problems = _art34_problems(draft, content)
        if problems:
            errors[ART34_DRAFT] = problems
    if errors:
        raise InvalidInput("Nothing was sent. Please check: " + ", ".join(
            _BY_NAME[name].label if name in _BY_NAME else "the draft for data subjects" for name in errors) + ".",
            fields=errors)
    return content


def _art34_problems(draft: str, content: Mapping[str, str]) -> str:
    """Art. 34(2): the communication to data subjects gives the contact point, the likely consequences and the
    measures (the checks are on the notice's own values, which the draft must carry over)."""
    if any(is_unknown(content.get(name, "")) for name in ("likely_consequences", "measures")):
        return "A draft for data subjects needs the likely consequences and the measures known first."
    if len(draft) > 8000:
        return "The draft is longer than 8000 characters."
    contact = content.get("contact_point", "").strip()
    if contact and contact.casefold() not in draft.casefold():
        return "The draft must give the contact point exactly as in the notice, so data subjects can reach it."
    return ""


def changes(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Field -> before and after, for every field that differs from the previous notice (all of them for the
    first notice, with ``before`` null)."""
    names = [*NAMES, ART34_DRAFT]
    if previous is None:
        return {name: {"before": None, "after": current[name]} for name in names if current.get(name)}
    return {name: {"before": previous.get(name), "after": current.get(name)} for name in names
            if (previous.get(name) or "") != (current.get(name) or "")}


def label_of(name: str) -> str:
    return _BY_NAME[name].label if name in _BY_NAME else "Draft for informing data subjects (Art. 34)"
