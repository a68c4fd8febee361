"""Tenant filters are written in one place: ``portal/tenancy.py``.

Anywhere else under ``portal/``, a comparison with an attribute named ``org_id`` (``Model.org_id == org.id``,
``x.org_id != y``; identity checks such as ``x.org_id is None`` are not filters), an ``.in_()``-style call on
one, or ``filter_by(org_id=...)`` is a hand-written tenant filter and fails this test, unless the line carries a
``# tenancy: <why this is not a tenant filter>`` comment.
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PORTAL = ROOT / "portal"
ALLOWED_FILE = PORTAL / "tenancy.py"
ATTRIBUTE = "org_id"
SET_METHODS = {"in_", "not_in", "notin_", "is_", "is_not", "isnot", "is_distinct_from", "isnot_distinct_from"}
MARK = "# tenancy:"


def _is_org_id(node: ast.AST) -> bool:
    return isinstance(node, ast.Attribute) and node.attr == ATTRIBUTE


def _justified_lines(source: str) -> set[int]:
    """Lines carrying a ``# tenancy:`` comment that gives a reason."""
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and token.string.startswith(MARK) and token.string[len(MARK):].strip():
            lines.add(token.start[0])
    return lines


def hand_written_filters(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, code) of each unjustified tenant filter in ``source``."""
    tree = ast.parse(source, filename)
    justified = _justified_lines(source)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            # ``is`` cannot be overloaded, so ``x.org_id is None`` never builds a query filter.
            identity_only = all(isinstance(op, ast.Is | ast.IsNot) for op in node.ops)
            hit = not identity_only and any(_is_org_id(operand) for operand in (node.left, *node.comparators))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            hit = (node.func.attr in SET_METHODS and _is_org_id(node.func.value)) or (
                node.func.attr == "filter_by" and any(k.arg == ATTRIBUTE for k in node.keywords))
        else:
            continue
        if not hit:
            continue
        lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        if not justified.intersection(lines):
            found.append((node.lineno, ast.get_source_segment(source, node) or ""))
    return sorted(found)


def test_no_hand_written_tenant_filters_outside_tenancy():
    offenders = []
    for path in sorted(PORTAL.rglob("*.py")):
        if path == ALLOWED_FILE:
            continue
        for line, code in hand_written_filters(path.read_text(encoding="utf-8"), str(path)):
            offenders.append(f"{path.relative_to(ROOT)}:{line}: {code}")
    assert not offenders, (
        "Hand-written tenant filters (use portal.tenancy.scoped/get_scoped, or add '# tenancy: <reason>' when "
        "the comparison is not a tenant filter):\n" + "\n".join(offenders)
    )


@pytest.mark.parametrize("code", [
    "statement.where(Membership.org_id == org.id)",
    "statement.where(org.id == Invitation.org_id)",
    "statement.where(Model.org_id != other)",
    "statement.where(Model.org_id.in_(ids))",
    "statement.where(Model.org_id.is_(None))",
    "statement.where(table.c.org_id == 1)",
    "select(Membership).filter_by(org_id=org.id)",
    "if membership.org_id == org.id:\n    pass",
    "statement.where(\n    Model.org_id\n    == org.id\n)",
    "statement.where(Model.org_id == org.id)  # tenancy:",
    "statement.where(Model.org_id == org.id)  # tenancy is fine here",
])
def test_the_lint_finds_hand_written_filters(code):
    assert len(hand_written_filters(code)) == 1


@pytest.mark.parametrize("code", [
    "statement.where(Model.org_id == org.id)  # tenancy: a login row, not tenant data",
    "statement.where(\n    Model.org_id == org.id  # tenancy: joins two of the same org's rows\n)",
    "org_id = getattr(subject, 'org_id', None)",
    "Membership(org_id=org.id)",
    "select(Membership.org_id).group_by(Membership.org_id)",
    "if org_id is None:\n    pass",
    "if event.org_id is not None:\n    pass",
    "statement.where(Organisation.id == org.id)",
])
def test_the_lint_leaves_other_code_alone(code):
    assert hand_written_filters(code) == []


def test_a_tenancy_comment_inside_a_string_does_not_count():
    code = "label = 'see # tenancy: nothing'; check = a.org_id == b"
    assert len(hand_written_filters(code)) == 1
