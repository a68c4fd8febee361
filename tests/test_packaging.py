"""``pip install .`` gives a complete portal: code, templates, static files and migrations inside the package.

The top-level ``templates/`` directory ships as ``portal/resources/templates``, where ``portal.web`` looks
when the source tree is absent. The Dockerfile is checked by reading it (no container engine needed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGED_TEMPLATES = "portal/resources/templates"
BUILD_LIMIT = 600.0


def pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def test_every_python_package_is_listed_in_pyproject():
    listed = set(pyproject()["tool"]["setuptools"]["packages"])  # type: ignore[index]
    on_disk = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "portal").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    missing = sorted(on_disk - listed)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == {"portal.resources.templates", "portal.resources.dpa_templates"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """A wheel built with pip from a copy of the source tree (as `pip install .` builds it)."""
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns(".git", ".venv*", "var", "build", "dist", "*.egg-info", "__pycache__",
                                    "node_modules", ".*_cache")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in ("portal", "templates", "dpa_templates"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out),
                            str(source)], capture_output=True, text=True, timeout=BUILD_LIMIT, check=False)
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = out.glob("dpa_portal-*.whl")
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        yield archive


@pytest.mark.slow
def test_wheel_contains_code_templates_static_files_and_migrations(wheel):
    names = set(wheel.namelist())
    expected = {
        *(f"{PACKAGED_TEMPLATES}/{p.relative_to(ROOT / 'templates').as_posix()}"
          for p in files_under(ROOT / "templates")),
        *(p.relative_to(ROOT).as_posix() for p in files_under(ROOT / "portal/static")),
        *(p.relative_to(ROOT).as_posix() for p in files_under(ROOT / "portal") if p.suffix == ".py"),
        "portal/migrations/script.py.mako",
        "portal/resources/dpa_templates/default_dpa.txt",
    }
    assert f"{PACKAGED_TEMPLATES}/base.html" in expected
    assert "portal/migrations/versions/0001_initial_schema.py" in expected
    assert "portal/static/portal.css" in expected
    missing = sorted(expected - names)
    assert not missing, f"the wheel lacks {missing}"
    stray = [n for n in names if n.startswith(("templates/", "tests/"))]
    assert not stray, "only the portal package is installed"

    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "portal = portal.cli:main" in wheel.read(entry_points).decode()


@pytest.mark.slow
def test_installed_wheel_works_without_the_source_tree(wheel, tmp_path):
    """Installed outside the checkout, the package finds its own templates and migrates a fresh database."""
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile",
                                "--target", str(target), wheel.filename or ""],
                               capture_output=True, text=True, timeout=BUILD_LIMIT, check=False)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    probe = """
import json, sys
import portal, portal.web
from portal.migrations.config import upgrade, check
upgrade(sys.argv[1]); check(sys.argv[1])
portal.web.templates.get_template("base.html")
print(json.dumps({"package": portal.__file__, "templates": str(portal.web._template_dir())}))
"""
    env = {**os.environ, "PYTHONPATH": str(target)}
    url = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    ran = subprocess.run([sys.executable, "-c", probe, url], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=BUILD_LIMIT, check=False)
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(target)
    assert Path(found["templates"]) == target / PACKAGED_TEMPLATES


# ---------------------------------------------------------------- Dockerfile

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    pairs = [[*line.split(None, 1), ""][:2] for line in logical]
    return [(name.upper(), args) for name, args in pairs]


def dockerfile(instruction: str) -> list[str]:
    return [args for name, args in dockerfile_instructions() if name == instruction]


def test_dockerfile_builds_a_non_root_portal_on_all_interfaces():
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    installs = [run for run in dockerfile("RUN") if "pip install" in run]
    assert installs, "the image installs the package"
    assert all("-e" not in run.split() for run in installs), "a real install, not an editable one"

    env = " ".join(dockerfile("ENV"))
    assert "PORTAL_HOST=0.0.0.0" in env
    assert "PORTAL_DATA_DIR=/data" in env
    assert json.loads(dockerfile("VOLUME")[-1]) == ["/data"]
    assert dockerfile("EXPOSE") == ["8000"]

    (user,) = dockerfile("USER")
    assert user.split(":")[0] not in {"root", "0"}
    user_index = instructions.index(("USER", user))
    cmd_index = instructions.index(("CMD", dockerfile("CMD")[-1]))
    assert user_index < cmd_index, "the portal must not run as root"
    assert json.loads(dockerfile("CMD")[-1]) == ["portal", "serve"]


def test_dockerfile_healthcheck_uses_python_not_curl():
    (healthcheck,) = dockerfile("HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    assert "/healthz" in command[2]
    compile(command[2], "<healthcheck>", "exec")
    assert "curl" not in healthcheck
    assert "wget" not in healthcheck


def test_docker_context_keeps_what_the_build_needs():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in ("pyproject.toml", "README.md", "portal", "templates", "dpa_templates"):
        assert needed not in ignored
    assert {".git", ".venv*", "var", "node_modules"} <= ignored
