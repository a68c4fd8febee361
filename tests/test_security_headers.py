"""Headers every response carries, HSTS only over https, and cookies flagged for their purpose."""

import dataclasses

import httpx

from portal.app import create_app
from portal.notifications.mail import Mailer
from portal.security import CSRF_COOKIE


async def test_pages_carry_the_security_headers(client):
    response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in response.headers
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_hsts_and_secure_cookies_when_served_over_https(settings, engine, db):
    https = dataclasses.replace(settings, base_url="https://portal.example")
    app = create_app(https, engine=engine, mailer=Mailer.from_settings(https))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://portal.example") as c:
        response = await c.get("/login")
    assert response.headers["strict-transport-security"].startswith("max-age=")
    assert "Secure" in response.headers["set-cookie"]


async def test_pages_use_no_inline_script_or_style(client):
    page = (await client.get("/login")).text
    assert "<script" not in page and "style=" not in page and "<style" not in page
