"""What a template may express: the names it reads, and a small allow-list of Jinja constructs.

Templates come from uploads, so they are treated as code from outside. Beyond the sandbox that renders them:
- only ``{{ }}`` output, ``{% for %}`` and ``{% if %}`` blocks, comparisons, ``and``/``or``/``not``, inline ``if``,
  ``~`` and literals are accepted; ``set``, ``macro``, ``include``, ``import``, calls and arithmetic are refused, so
  a template can neither reach Python objects nor loop or allocate beyond the data it is given;
- no attribute or key may start with ``_`` (the way out of every sandbox escape: ``__class__``, ``__globals__``);
- filters and tests come from the short lists below;
- names are reported as written, dotted (``client.name``, ``sp.name`` inside ``{% for sp in subprocessors %}``),
  for the caller to compare with its catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from jinja2 import nodes

FILTERS = frozenset({"default", "d", "upper", "lower", "title", "capitalize", "trim", "join", "length", "count",
                     "first", "last", "string", "int", "round"})
TESTS = frozenset({"defined", "undefined", "none", "true", "false", "number", "string", "eq", "equalto", "ne",
                   "in", "even", "odd"})
LOOP_ATTRIBUTES = frozenset({"index", "index0", "revindex", "revindex0", "first", "last", "length"})
_STATEMENT_NAMES: dict[type[nodes.Node], str] = {
    nodes.Assign: "set", nodes.AssignBlock: "set", nodes.Macro: "macro", nodes.CallBlock: "call",
    nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from … import", nodes.Extends: "extends",
    nodes.Block: "block", nodes.With: "with", nodes.FilterBlock: "filter", nodes.ExprStmt: "do",
    nodes.Continue: "continue", nodes.Break: "break"}
_PASS_THROUGH = (nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.CondExpr, nodes.Concat,
                 nodes.List, nodes.Tuple)


@dataclass
class Findings:
    names: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)

    def refuse(self, problem: str) -> None:
        if problem not in self.problems:
            self.problems.append(problem)


def analyse(template: nodes.Template, loops: Mapping[str, str] | None = None) -> Findings:
    """The names ``template`` reads and every construct it uses outside the allow-list.

    ``loops`` (loop variable -> the list it must iterate) makes ``{% for sp in subprocessors %}`` the only way to
    bind ``sp``; without it any simple loop variable is accepted."""
    findings = Findings()
    _Walker(findings, loops).statements(template.body, frozenset())
    return findings


class _Walker:
    def __init__(self, findings: Findings, loops: Mapping[str, str] | None) -> None:
        self.findings = findings
        self.loops = loops

    def statements(self, body: list[nodes.Node], bound: frozenset[str]) -> None:
        for node in body:
            self.statement(node, bound)

    def statement(self, node: nodes.Node, bound: frozenset[str]) -> None:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if not isinstance(child, nodes.TemplateData):
                    self.expression(child, bound)
        elif isinstance(node, nodes.If):
            self.expression(node.test, bound)
            self.statements(node.body, bound)
            for branch in node.elif_:
                self.statement(branch, bound)
            self.statements(node.else_, bound)
        elif isinstance(node, nodes.For):
            self.loop(node, bound)
        else:
            tag = _STATEMENT_NAMES.get(type(node), type(node).__name__.lower())
            self.findings.refuse(f"the {{% {tag} %}} tag")

    def loop(self, node: nodes.For, bound: frozenset[str]) -> None:
        self.expression(node.iter, bound)
        if node.recursive:
            self.findings.refuse("recursive loops")
        if not isinstance(node.target, nodes.Name):
            self.findings.refuse("loops that unpack several variables")
            return
        variable, iterable = node.target.name, _path(node.iter, self.findings)
        if self.loops is not None and self.loops.get(variable) != iterable:
            expected = {v: i for i, v in self.loops.items()}.get(iterable or "")
            hint = f"; write {{% for {expected} in {iterable} %}}" if expected else ""
            self.findings.refuse(f"the loop {{% for {variable} in {iterable or '…'} %}}{hint}")
        inner = bound | {variable, "loop"}
        if node.test is not None:
            self.expression(node.test, inner)
        self.statements(node.body, inner)
        self.statements(node.else_, bound)

    def expression(self, node: nodes.Node, bound: frozenset[str]) -> None:
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            self.reference(node, bound)
        elif isinstance(node, nodes.Const):
            return
        elif isinstance(node, nodes.Filter | nodes.Test):
            allowed, kind = (FILTERS, "filter") if isinstance(node, nodes.Filter) else (TESTS, "test")
            if node.name not in allowed:
                self.findings.refuse(f"the “{node.name}” {kind}")
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                self.findings.refuse(f"*args or **kwargs in the “{node.name}” {kind}")
            for operand in (node.node, *node.args, *(kw.value for kw in node.kwargs)):
                if operand is not None:
                    self.expression(operand, bound)
        elif isinstance(node, nodes.Call):
            callee = _path(node.node, Findings())
            self.findings.refuse(f"calling “{callee or 'an expression'}(…)”: templates cannot call functions")
            for child in node.iter_child_nodes():
                self.expression(child, bound)
        elif isinstance(node, _PASS_THROUGH):
            for child in node.iter_child_nodes():
                self.expression(child, bound)
        else:
            self.findings.refuse(f"{type(node).__name__.lower()} expressions")
            for child in node.iter_child_nodes():
                self.expression(child, bound)

    def reference(self, node: nodes.Name | nodes.Getattr | nodes.Getitem, bound: frozenset[str]) -> None:
        path = _path(node, self.findings)
        if path is None:
            if isinstance(node, nodes.Getattr | nodes.Getitem):
                self.expression(node.node, bound)
            return
        root, _, rest = path.partition(".")
        if root == "loop" and "loop" in bound:
            if rest.split(".")[0] not in LOOP_ATTRIBUTES:
                self.findings.refuse(f"“{path}” (loops offer {', '.join(sorted(LOOP_ATTRIBUTES))})")
            return
        if self.loops is not None and root in self.loops and root not in bound:
            self.findings.refuse(f"“{path}” outside {{% for {root} in {self.loops[root]} %}}")
        self.findings.names.add(path)


def _path(node: nodes.Node, findings: Findings) -> str | None:
    """``client.name`` for ``client.name`` or ``client['name']``; None (and a problem) when it is not a plain path."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr | nodes.Getitem):
        key = node.attr if isinstance(node, nodes.Getattr) else _constant_key(node.arg)
        if key is None:
            findings.refuse("indexing with anything but a literal name or number")
            return None
        if key.startswith("_"):
            findings.refuse(f"the attribute “{key}” (names starting with “_” are internal)")
            return None
        base = _path(node.node, findings)
        if base is None:
            if not isinstance(node.node, nodes.Getattr | nodes.Getitem | nodes.Name):
                findings.refuse(f"reading “{key}” from a literal or an expression")
            return None
        return f"{base}[]" if key.isdigit() else f"{base}.{key}"
    return None


def _constant_key(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, str | int) and not isinstance(node.value, bool):
        return str(node.value)
    return None
