"""``portal token create`` prints a working token once, and explains what is wrong otherwise."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import pytest
from sqlalchemy import select

from portal.accounts.tokens.models import ApiToken
from portal.cli import main


@pytest.fixture
def cli_env(monkeypatch, database_url, tmp_path):
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "cli-data"))


async def run_cli(*argv: str) -> None:
    # The command runs its own event loop, as it does from a shell.
    await asyncio.to_thread(main, list(argv))


async def test_token_create_prints_a_working_token(world, db, app, cli_env, capsys):
    acme = await world.client_org("Acme Logistics")
    await run_cli("token", "create", "--org", acme.slug, "--name", "GRC sync", "--scope", "org:read",
                  "--days", "90")
    out, err = capsys.readouterr()
    plaintext = out.strip()
    assert plaintext.startswith("dpa_")
    assert "shown only once" in err

    token = (await db.execute(select(ApiToken))).scalar_one()
    await db.commit()
    assert token.name == "GRC sync"
    assert token.scopes == ["org:read"]
    assert token.expires_at is not None
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as api:
        me = await api.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
        assert me.status_code == 200
        assert me.json()["organisation"]["slug"] == acme.slug
        org = await api.get(f"/api/v1/organisations/{acme.id}", headers={"Authorization": f"Bearer {plaintext}"})
        assert org.status_code == 200
        assert org.json()["name"] == "Acme Logistics"


@pytest.mark.parametrize(("argv", "message"), [
    (["--org", "no-such-org", "--name", "x", "--scope", "org:read"], "No organisation has the slug 'no-such-org'"),
    (["--org", "{slug}", "--name", "x", "--scope", "org:write"], "Unknown scope 'org:write'"),
    (["--org", "{slug}", "--name", "x"], "Choose at least one scope"),
    (["--org", "{slug}", "--name", "x", "--scope", "org:read", "--days", "0"], "whole number of days"),
])
async def test_token_create_explains_bad_input(world, db, cli_env, capsys, argv, message):
    acme = await world.client_org("Acme Logistics")
    with pytest.raises(SystemExit) as exit_info:
        await run_cli("token", "create", *[a.format(slug=acme.slug) for a in argv])
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert message in err
    assert "dpa_" not in out
    assert (await db.execute(select(ApiToken))).first() is None
    await db.commit()
