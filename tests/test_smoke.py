from portal.accounts.roles import Role


async def test_healthz(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_world_builds_people(world, db):
    org = await world.client_org()
    member = await world.person(org, Role.ADMIN, Role.SIGNATORY)
    assert member.org_id == org.id
