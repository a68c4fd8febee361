"""A real OpenID Connect provider for the single sign-on tests: panva's ``oidc-provider`` (npm) on loopback.

``tests/idp/idp.mjs`` configures it: a confidential client ``portal`` whose redirect URIs are the portal's
``/sso/callback/<provider id>`` on ``testserver`` (httpx) and ``127.0.0.1:<port>`` (browser), the built-in login
and consent forms (any password is accepted; the login becomes the subject), and two broken discovery
documents for the configuration checks. ``npm ci --prefix tests/idp`` installs it.
"""

from __future__ import annotations

import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.accounts.sso import service as sso
from portal.accounts.sso.models import IdentityProvider
from portal.actors import Actor
from portal.db import commit_and_run_jobs
from portal.settings import Settings
from tests.conftest import free_port

IDP_DIR = Path(__file__).resolve().parent / "idp"
START_SECONDS = 30


@dataclass(frozen=True)
class TestIdP:
    """The running provider; ``issuer`` is ``http://127.0.0.1:<port>``."""

    __test__ = False  # not a test class, despite the name

    issuer: str
    client_id: str = "portal"
    client_secret: str = "portal-secret"

    async def configure(self, session: Any, org: Organisation, settings: Settings, *, domains: str,
                        jit: bool = True, role: Role = Role.MEMBER, issuer: str | None = None) -> IdentityProvider:
        """Add this IdP to ``org`` through the real service (discovery included) and commit."""
        provider = await sso.create_provider(session, actor=Actor.system("test"), org_id=org.id, settings=settings,
                                             data=sso.ProviderInput(
                                                 issuer=issuer or self.issuer, client_id=self.client_id,
                                                 client_secret=self.client_secret, domains=domains,
                                                 default_role=role.value, jit_enabled=jit, enabled=True))
        await commit_and_run_jobs(session)
        return provider

    async def sign_in(self, authorize_url: str, login: str, *, abort: bool = False) -> str:
        """Play the person at the IdP: fill its login and consent forms (or abort at the login form) and return
        the callback URL it sends the browser back to."""
        async with httpx.AsyncClient(timeout=10) as browser:
            response = await browser.get(authorize_url)
            for _ in range(12):
                if response.is_redirect:
                    target = urljoin(str(response.url), response.headers["location"])
                    if not target.startswith(self.issuer + "/"):
                        return target
                    response = await browser.get(target)
                    continue
                assert response.status_code == 200, response.text[:500]
                found = re.search(r'name="prompt" value="(\w+)"', response.text)
                assert found, f"not an interaction page: {response.text[:500]}"
                prompt = found.group(1)
                if prompt == "login" and abort:
                    response = await browser.get(str(response.url).rstrip("/") + "/abort")
                    continue
                form = ({"prompt": "login", "login": login, "password": "any"} if prompt == "login"
                        else {"prompt": "consent"})
                response = await browser.post(str(response.url), data=form)
        raise AssertionError("the IdP did not send the browser back to the portal")


def with_query(url: str, **changes: str | None) -> str:
    """``url`` with query parameters replaced (``None`` removes one)."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        else:
            query[key] = value
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.fixture(scope="session")
def oidc_idp() -> Iterator[TestIdP]:
    """Starts ``tests/idp/idp.mjs`` once per run; skips (a failure under CI=true) when Node or the npm packages
    are missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the single sign-on tests need it (apt-get install nodejs)")
    if not (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("the test identity provider is not installed; run `npm ci --prefix tests/idp`")
    port = free_port()
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen([node, "idp.mjs"], cwd=IDP_DIR, env={**os.environ, "PORT": str(port)},
                                   stdout=subprocess.PIPE, stderr=errors, text=True)
        assert process.stdout is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                ready = selector.select(timeout=START_SECONDS)
            line = process.stdout.readline() if ready else ""
            if '"ready":true' not in line:
                errors.seek(0)
                raise RuntimeError(f"the test identity provider did not start: {line}{errors.read()[-2000:]}")
            yield TestIdP(issuer=f"http://127.0.0.1:{port}")
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
