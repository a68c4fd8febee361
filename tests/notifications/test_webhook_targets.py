"""Which webhook targets the portal calls: http(s) only, public addresses only (IPv4 and IPv6, literal or
resolved) unless PORTAL_WEBHOOK_ALLOW_PRIVATE, https only when the portal itself is served over https."""

from __future__ import annotations

import base64
import ipaddress

import pytest

from portal.errors import InvalidInput
from portal.notifications.webhooks import check_target, new_secret, refusal_of
from tests.conftest import make_settings


@pytest.fixture
def strict(tmp_path):
    return make_settings("sqlite:///unused", tmp_path)


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"),
    ("224.0.0.1", "multicast"), ("ff02::1", "multicast"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),  # noqa: S104 - an address to refuse, nothing binds
    ("100.64.0.1", "reserved"),  # carrier-grade NAT: not public
    ("::ffff:127.0.0.1", "loopback"), ("64:ff9b::a00:1", "private"), ("2002:7f00:1::1", "loopback"),
])
def test_non_public_addresses_are_refused(address, why):
    assert refusal_of(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert refusal_of(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook", "http://localhost:8080/hook", "http://[::1]/hook", "http://2130706433/hook",
    "http://169.254.169.254/latest/meta-data", "https://10.0.0.5/x", "http://[fe80::1]/", "http://0.0.0.0:80/",
    "http://[::ffff:127.0.0.1]/",
])
async def test_private_targets_are_refused_when_the_url_is_saved(url, strict):
    with pytest.raises(InvalidInput) as refused:
        await check_target(url, strict)
    assert refused.value.fields == {"url": "Not a public address."}
    assert "public addresses" in refused.value.message


@pytest.mark.parametrize(("url", "field"), [
    ("", "Required."), ("ftp://hooks.example.com/x", "Not http(s)."), ("file:///etc/passwd", "Not http(s)."),
    ("javascript:alert(1)", "Not http(s)."), ("https://", "Not a URL."), ("https://host:99999/", "Not a URL."),
    ("https://user:secret@hooks.example.com/", "Has credentials."),
    ("https://hooks.example.com/a b", "Contains spaces."),
    ("https://hooks.example.com/#x", "Has a fragment."), ("https://hooks.example.com/" + "x" * 2000, "Too long."),
])
async def test_malformed_urls_are_refused(url, field, strict):
    with pytest.raises(InvalidInput) as refused:
        await check_target(url, strict)
    assert refused.value.fields == {"url": field}


async def test_a_host_that_does_not_resolve_is_refused(strict):
    with pytest.raises(InvalidInput) as refused:
        await check_target("https://hooks.example.invalid/dpa", strict)
    assert "could not be resolved" in refused.value.message


async def test_a_public_address_is_accepted(strict):
    assert await check_target(" https://8.8.8.8/hook ", strict) == "https://8.8.8.8/hook"


async def test_private_targets_are_accepted_when_allowed(tmp_path):
    permissive = make_settings("sqlite:///unused", tmp_path, webhook_allow_private=True)
    assert await check_target("http://127.0.0.1:9/hook", permissive) == "http://127.0.0.1:9/hook"


async def test_a_portal_served_over_https_only_calls_https(tmp_path):
    production = make_settings("sqlite:///unused", tmp_path, base_url="https://portal.example")
    with pytest.raises(InvalidInput) as refused:
        await check_target("http://8.8.8.8/hook", production)
    assert refused.value.fields == {"url": "Not https."}
    assert await check_target("https://8.8.8.8/hook", production) == "https://8.8.8.8/hook"


def test_secrets_are_whsec_and_32_random_bytes():
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
