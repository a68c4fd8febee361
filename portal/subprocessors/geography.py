"""Where personal data may go without a transfer tool: the EEA and the countries with an adequacy decision.

This is the one place these lists live (registry validation, the public list and notices use them). Sources,
checked 2026-11: EEA = the 27 EU member states plus Iceland, Liechtenstein and Norway (EEA Agreement); adequacy
decisions under GDPR Art. 45 (and decisions kept in force by Art. 45(9)) as listed by the European Commission
("Adequacy decisions", commission.europa.eu). Partial decisions are marked: Canada covers commercial
organisations under PIPEDA; the United States covers only organisations certified under the EU-US Data Privacy
Framework, so a US location needs the ``dpf`` transfer tool (or another one) and is *not* in this list. Update this
module when the Commission adopts or withdraws a decision; an operator who disagrees with a listing can still
record a transfer tool for any entry.
"""

from __future__ import annotations

import pycountry

EEA: frozenset[str] = frozenset({
    # EU member states
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
    "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    # EEA, outside the EU
    "IS", "LI", "NO",
})

ADEQUATE: dict[str, str] = {
    "AD": "Andorra",
    "AR": "Argentina",
    "CA": "Canada (commercial organisations, PIPEDA)",
    "CH": "Switzerland",
    "FO": "Faroe Islands",
    "GB": "United Kingdom",
    "GG": "Guernsey",
    "IL": "Israel",
    "IM": "Isle of Man",
    "JE": "Jersey",
    "JP": "Japan",
    "KR": "Republic of Korea",
    "NZ": "New Zealand",
    "UY": "Uruguay",
}

# Chapter V tools a sub-processor entry may name for a location outside the EEA and the adequate countries.
TRANSFER_MECHANISMS: dict[str, str] = {
    "scc_module_3": "Standard contractual clauses (2021/914), module 3: processor to processor",
    "scc_module_2": "Standard contractual clauses (2021/914), module 2: controller to processor",
    "dpf": "EU-US Data Privacy Framework (the recipient is certified)",
    "bcr": "Binding corporate rules (Art. 47)",
    "art46_other": "Other Art. 46 safeguard (code of conduct, certification, ad hoc clauses)",
    "art49": "Derogation for a specific situation (Art. 49), documented",
}


def country_name(code: str) -> str:
    country = pycountry.countries.get(alpha_2=code)
    return country.name if country is not None else code


def is_country(code: str) -> bool:
    return len(code) == 2 and code.isalpha() and code.isupper() and pycountry.countries.get(alpha_2=code) is not None


def needs_transfer_tool(code: str) -> bool:
    """True for a country outside the EEA without an adequacy decision (Chapter V applies)."""
    return code not in EEA and code not in ADEQUATE


def transfer_basis(code: str) -> str:
    """How data may lawfully reach ``code`` without any further tool, or '' when it needs one."""
    if code in EEA:
        return "EEA"
    if code in ADEQUATE:
        return f"Adequacy decision: {ADEQUATE[code]}"
    return ""
