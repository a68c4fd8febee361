"""The README stays true: each setting, command and test variable is documented; its test command is CI's.

The settings table is generated from ``portal.settings.SETTINGS``; after changing a setting, rewrite it with
``python -m tests.test_readme``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from portal.cli import build_parser
from portal.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI_SCRIPT = ROOT / ".ci" / "run"
TABLE = re.compile(r"(<!-- settings:start[^\n]*-->\n)(.*?)(<!-- settings:end -->)", re.DOTALL)


def settings_table() -> str:
    rows = ["| Setting | Default | What it does |", "|---|---|---|"]
    for spec in SETTINGS:
        default = f"`{spec.default}`" if spec.default else "(empty)"
        rows.append(f"| `{spec.name}` | {default} | {spec.help.replace('|', '&#124;')} |")
    return "\n".join(rows) + "\n"


def readme_table(text: str) -> str:
    match = TABLE.search(text)
    assert match, "README.md lost its <!-- settings:start --> ... <!-- settings:end --> markers"
    return match.group(2)


def cli_commands(parser: argparse.ArgumentParser, prefix: str = "portal") -> list[str]:
    """Every leaf command of ``portal``, e.g. ``portal db upgrade``."""
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += cli_commands(sub, f"{prefix} {name}") or [f"{prefix} {name}"]
    return found


def test_readme_lists_every_setting_with_its_default_and_help():
    text = README.read_text()
    stale = "the settings table is stale: run `python -m tests.test_readme`"
    assert readme_table(text) == settings_table(), stale
    for spec in SETTINGS:
        assert f"`{spec.name}`" in text


def test_readme_test_command_is_what_ci_runs():
    ci_lines = [line.strip() for line in CI_SCRIPT.read_text().splitlines() if re.match(r"\s*pytest\b", line)]
    assert len(ci_lines) == 1, f".ci/run should run pytest exactly once, found {ci_lines}"
    readme_lines = [line for line in README.read_text().splitlines() if "pip install -e '.[test]'" in line]
    assert len(readme_lines) == 1, "README.md should show one test command"
    readme_pytest = readme_lines[0].rsplit("&&", 1)[1].strip()
    assert readme_pytest == ci_lines[0]


def test_readme_install_command_and_ci_install_agree():
    text = README.read_text()
    install = "python3 -m venv .venv && . .venv/bin/activate && pip install . && portal demo && portal serve"
    assert install in text
    ci = CI_SCRIPT.read_text()
    assert "pip install -e '.[test]'" in ci
    assert "npm ci --prefix tests/idp" in ci
    assert "npm ci --prefix tests/idp" in text


def test_readme_documents_every_command():
    commands = cli_commands(build_parser())
    assert "portal serve" in commands
    assert "portal audit verify" in commands
    text = README.read_text()
    missing = [command for command in commands if f"`{command}" not in text]
    assert not missing, f"README.md does not document {missing}"


def test_readme_documents_every_test_environment_variable():
    used: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        used |= set(re.findall(r"\bPORTAL_TEST_[A-Z0-9_]+\b", path.read_text()))
    assert {"PORTAL_TEST_DATABASES", "PORTAL_TEST_POSTGRES_URL"} <= used
    text = README.read_text()
    missing = sorted(name for name in used | {"CI"} if f"`{name}`" not in text)
    assert not missing, f"README.md does not document {missing}"


def write_settings_table() -> None:
    text = README.read_text()
    README.write_text(TABLE.sub(lambda m: m.group(1) + settings_table() + m.group(3), text, count=1))


if __name__ == "__main__":
    write_settings_table()
