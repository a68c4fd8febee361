"""``portal serve`` as an operator starts it: the console script in a subprocess with its own data dir.

On SQLite it creates and migrates the embedded database itself; on PostgreSQL it refuses to start on a schema
that is behind until ``portal db upgrade`` ran. The generated secret key is stored owner-only, never printed.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory

from portal.migrations.config import alembic_config
from tests.conftest import _create_pg_database, _drop_pg_database, free_port

STARTUP_LIMIT = 60.0  # seconds before a server that never answers counts as broken
COMMAND_LIMIT = 120.0


def portal_command() -> str:
    beside = Path(sys.executable).with_name("portal")
    found = str(beside) if beside.exists() else shutil.which("portal")
    assert found, "the `portal` console script is not installed (pip install -e '.[test]')"
    return found


def portal_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PORTAL_")}
    return {**env, "PORTAL_DATA_DIR": str(data_dir), **extra}


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def portal(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([portal_command(), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=COMMAND_LIMIT, check=False)


@dataclass
class Served:
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def serving(env: dict[str, str], workdir: Path) -> Iterator[Served]:
    """``portal serve`` on a free loopback port until the block ends, then SIGTERM (SIGKILL if it hangs)."""
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([portal_command(), "serve", "--port", str(port)], env=env, cwd=workdir,
                                   stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_healthy(process, served)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _wait_until_healthy(process: subprocess.Popen[bytes], served: Served) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"portal serve exited with status {process.returncode}:\n{served.output()}")
        try:
            if httpx.get(f"{served.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"portal serve did not answer /healthz within {STARTUP_LIMIT:.0f} s:\n{served.output()}")


def assert_security_headers(response: httpx.Response) -> None:
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]
    assert "server" not in response.headers


def assert_secret_key_kept_private(data_dir: Path, *outputs: str) -> None:
    path = data_dir / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = path.read_text().strip()
    assert len(secret) >= 32
    for output in outputs:
        assert secret not in output


def sqlite_revision(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        (revision,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    return str(revision)


def test_serve_starts_on_a_fresh_data_dir(backend, database_url, tmp_path):
    data_dir = tmp_path / "data"
    extra = {} if backend == "sqlite" else {"PORTAL_DATABASE_URL": database_url}
    with serving(portal_env(data_dir, **extra), tmp_path) as served:
        health = httpx.get(f"{served.url}/healthz", timeout=10)
        login = httpx.get(f"{served.url}/login", timeout=10)
        output = served.output()

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert_security_headers(health)
    assert login.status_code in {200, 404}  # 404 only while no login page is mounted
    assert_security_headers(login)
    assert "strict-transport-security" not in health.headers  # served over plain http
    assert f"data in {data_dir}" in output
    if backend == "sqlite":  # the embedded database is created and migrated by `portal serve` itself
        assert sqlite_revision(data_dir / "portal.sqlite3") == head_revision()
    else:
        assert not (data_dir / "portal.sqlite3").exists()
    assert_secret_key_kept_private(data_dir, output, served.output())


def test_serve_on_a_schema_that_is_behind(backend, database_url, tmp_path):
    """PostgreSQL: refused with a clear message until `portal db upgrade`; SQLite: migrated on start."""
    data_dir = tmp_path / "data"
    if backend == "sqlite":
        empty = tmp_path / "empty.sqlite3"
        sqlite3.connect(empty).close()
        with serving(portal_env(data_dir, PORTAL_DATABASE_URL=f"sqlite:///{empty}"), tmp_path) as served:
            assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
        assert sqlite_revision(empty) == head_revision()
        assert_secret_key_kept_private(data_dir, served.output())
        return

    scratch_url = _create_pg_database()
    try:
        env = portal_env(data_dir, PORTAL_DATABASE_URL=scratch_url)
        refused = portal("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
        assert refused.returncode == 1
        assert "The database schema is at nothing" in refused.stderr
        assert "Run `portal db upgrade` first." in refused.stderr
        assert "Traceback" not in refused.stderr

        upgraded = portal("db", "upgrade", env=env, cwd=tmp_path)
        assert upgraded.returncode == 0, upgraded.stderr
        assert "Database is up to date." in upgraded.stdout

        with serving(env, tmp_path) as served:
            assert httpx.get(f"{served.url}/healthz", timeout=10).status_code == 200
        assert_secret_key_kept_private(data_dir, refused.stdout, refused.stderr, upgraded.stdout,
                                       upgraded.stderr, served.output())
    finally:
        _drop_pg_database(scratch_url)
