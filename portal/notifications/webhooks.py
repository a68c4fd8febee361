"""Webhooks as the Standard Webhooks spec (1.0.0) describes them: signing, target checks and the sender.

Invariants:
- a request carries ``webhook-id`` (the delivery's id, the same on every retry), ``webhook-timestamp`` (Unix
  seconds of this attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` over ``{id}.{timestamp}.{body}``
  keyed with the base64-decoded secret; while a rotation overlaps, the previous secret signs too (space-separated);
- the body is ``{"type": <event>, "timestamp": <notice time>, "data": <the notice's payload>}`` with the
  recipient's own acknowledgement link filled in;
- only http(s) targets are called, and unless ``PORTAL_WEBHOOK_ALLOW_PRIVATE`` only on public addresses: the host
  is resolved and checked when the URL is saved and again on every connection, which goes to the very address that
  was checked (so a DNS answer that changes in between reaches nothing private); with an https base URL the
  target must be https too;
- redirects are never followed (a 3xx is a failure), a request ends after 15 s, 2xx is success, 410 means the
  endpoint is gone, and ``Retry-After`` on 429/502/503/504 pushes the next attempt back (at most a day);
- secrets are never logged; only the status line and the start of an answer are kept as evidence.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
from collections.abc import Iterable
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import httpcore2
import httpx2

from portal.db import utcnow
from portal.errors import InvalidInput
from portal.notifications.catalog import spec_for
from portal.notifications.models import Delivery, Notice, WebhookEndpoint
from portal.notifications.outbox import AttemptResult
from portal.notifications.service import ack_token
from portal.security import decrypt_field
from portal.settings import Settings

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's marker, not a secret
SECRET_BYTES = 32
TIMEOUT = 15.0
MAX_URL_LENGTH = 2000
MAX_ANSWER_CHARS = 300
MAX_RETRY_AFTER = dt.timedelta(hours=24)
THROTTLING = frozenset({429, 502, 503, 504})
USER_AGENT = "dpa-portal-webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


# ---------------------------------------------------------------- secrets and signatures

def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a message under ``secret`` (``whsec_...``)."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(msg_id: str, timestamp: int, body: bytes, signing_secrets: Iterable[str]) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, msg_id, timestamp, body) for s in signing_secrets),
    }


def signing_secrets(endpoint: WebhookEndpoint, secret_key: str, now: dt.datetime) -> list[str]:
    """The secrets that sign for ``endpoint`` now: the current one, and the previous one during a rotation."""
    found = [decrypt_field(secret_key, endpoint.secret_encrypted)]
    if (endpoint.previous_secret_encrypted and endpoint.previous_secret_until is not None
            and endpoint.previous_secret_until > now):
        found.append(decrypt_field(secret_key, endpoint.previous_secret_encrypted))
    return found


# ---------------------------------------------------------------- targets (SSRF)

class TargetRefused(Exception):
    """The target is not a public address and private targets are not allowed."""


def refusal_of(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be called (loopback, private...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (
            ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in _NAT64 else None)
        if embedded is not None and (why := refusal_of(embedded)):
            return why
    for why, hit in (("loopback", ip.is_loopback), ("link-local", ip.is_link_local),
                     ("multicast", ip.is_multicast), ("unspecified", ip.is_unspecified),
                     ("private", ip.is_private), ("reserved", ip.is_reserved or not ip.is_global)):
        if hit:
            return why
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` stands for (itself when it is an IP literal)."""
    try:
        return [ipaddress.ip_address(host.strip("[]").split("%", 1)[0])]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for *_rest, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


async def public_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host``, all public, or TargetRefused saying why not."""
    try:
        addresses = await resolve(host, port)
    except OSError as exc:
        raise TargetRefused(f"the host name {host} could not be resolved ({exc.strerror or exc})") from None
    if not addresses:
        raise TargetRefused(f"the host name {host} has no address")
    for ip in addresses:
        why = refusal_of(ip)
        if why:
            raise TargetRefused(f"{host} resolves to {ip}, a {why} address; webhooks only go to public addresses "
                                "(PORTAL_WEBHOOK_ALLOW_PRIVATE allows others)")
    return addresses


def checked_url(raw: str, settings: Settings) -> str:
    """``raw`` if it has the shape of a URL the portal may call (scheme, host, no credentials), else InvalidInput."""
    url = raw.strip()
    if not url:
        raise InvalidInput("The URL is required.", fields={"url": "Required."})
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"The URL is too long (at most {MAX_URL_LENGTH} characters).", fields={"url": "Too long."})
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInput("The URL must not contain spaces.", fields={"url": "Contains spaces."})
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        raise InvalidInput("The URL must start with https:// (or http://).", fields={"url": "Not http(s)."})
    if settings.https and not settings.webhook_allow_private and parts.scheme != "https":
        raise InvalidInput("The URL must use https://.", fields={"url": "Not https."})
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1:
        raise InvalidInput("Enter a full URL with a host name, e.g. https://hooks.example.com/dpa.",
                           fields={"url": "Not a URL."})
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("The URL must not contain a user name or password.", fields={"url": "Has credentials."})
    if parts.fragment:
        raise InvalidInput("The URL must not contain a fragment (#...).", fields={"url": "Has a fragment."})
    return url


async def check_target(raw: str, settings: Settings) -> str:
    """``raw`` if the portal may send to it: http(s), and public addresses only unless private ones are allowed."""
    url = checked_url(raw, settings)
    if settings.webhook_allow_private:
        return url
    parts = urlsplit(url)
    assert parts.hostname is not None  # checked_url made sure
    try:
        await public_addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except TargetRefused as exc:
        raise InvalidInput(f"This URL cannot receive webhooks: {exc}.", fields={"url": "Not a public address."}) \
            from None
    return url


class _PublicOnlyBackend(httpcore2.AsyncNetworkBackend):
    """Connects only to public addresses: resolves the host itself, checks every address, then connects to a
    checked address (TLS still verifies the certificate for the host name)."""

    def __init__(self) -> None:
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's API
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None
                          ) -> httpcore2.AsyncNetworkStream:
        addresses = await public_addresses(host, port)
        failure: Exception | None = None
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(str(ip), port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except httpcore2.ConnectError as exc:  # try the host's next address
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109 - httpcore's API
                                  socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None
                                  ) -> httpcore2.AsyncNetworkStream:
        raise TargetRefused("webhooks are not sent over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PublicOnlyTransport(httpx2.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__(trust_env=False)
        limits = httpx2.Limits()
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=httpx2.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry, network_backend=_PublicOnlyBackend(),
        )


# ---------------------------------------------------------------- answers

def parse_retry_after(value: str | None, now: dt.datetime) -> dt.timedelta | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as a delay of at most a day; None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = dt.timedelta(seconds=int(value[:9]))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        delay = when - now
    if delay <= dt.timedelta(0):
        return None
    return min(delay, MAX_RETRY_AFTER)


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:MAX_ANSWER_CHARS]


def outcome_of(status: int, headers: httpx2.Headers, text: str, *, duration_ms: int,
               now: dt.datetime) -> AttemptResult:
    """What an HTTP answer means for the delivery (see the module's invariants)."""
    response = f"HTTP {status}"
    if 200 <= status < 300:
        return AttemptResult(ok=True, response=response, duration_ms=duration_ms)
    answer = _excerpt(text)
    if 300 <= status < 400:
        where = headers.get("location", "")
        error = f"Redirect{' to ' + where[:200] if where else ''} not followed: a webhook must be answered with 2xx."
    elif status == 410:
        return AttemptResult(ok=False, response=response, gone=True, duration_ms=duration_ms,
                             error="410 Gone: the receiver asked for this endpoint to be disabled."
                             + (f" {answer}" if answer else ""))
    else:
        error = answer or f"The receiver answered {status}."
    retry_after = parse_retry_after(headers.get("retry-after"), now) if status in THROTTLING else None
    return AttemptResult(ok=False, response=response, error=error, retry_after=retry_after,
                         duration_ms=duration_ms)


# ---------------------------------------------------------------- the sender

class WebhookSender:
    """Sends webhook deliveries; one instance (and its connection pool) serves a worker until ``aclose``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        transport = httpx2.AsyncHTTPTransport(trust_env=False) if settings.webhook_allow_private \
            else _PublicOnlyTransport()
        self._client = httpx2.AsyncClient(transport=transport, timeout=TIMEOUT, follow_redirects=False,
                                          trust_env=False, headers={"user-agent": USER_AGENT})

    async def aclose(self) -> None:
        await self._client.aclose()

    def body(self, delivery: Delivery, notice: Notice) -> bytes:
        """The JSON body of ``delivery`` (the same on every attempt)."""
        data = {**notice.payload,
                "acknowledge_url": f"{self.settings.base_url}/ack/{ack_token(self.settings.secret_key, delivery.id)}"}
        envelope = {"type": spec_for(notice.type).event,
                    "timestamp": notice.created_at.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
                    "data": data}
        return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()

    async def send(self, delivery: Delivery, notice: Notice, endpoint: WebhookEndpoint) -> AttemptResult:
        """One attempt to deliver ``delivery`` to ``endpoint``; never raises for what the network or peer does."""
        started = time.monotonic()

        def failed(error: str, response: str = "") -> AttemptResult:
            return AttemptResult(ok=False, response=response, error=error,
                                 duration_ms=int((time.monotonic() - started) * 1000))

        if not endpoint.enabled:
            return failed("The endpoint is disabled.")
        try:
            url = checked_url(endpoint.url, self.settings)
        except InvalidInput as exc:
            return failed(f"Not sent: {exc.message}")
        try:
            keys = signing_secrets(endpoint, self.settings.secret_key, utcnow())
        except ValueError as exc:
            return failed(f"Not sent: {exc}.")
        body = self.body(delivery, notice)
        headers = signed_headers(delivery.webhook_id, int(time.time()), body, keys)
        try:
            async with asyncio.timeout(TIMEOUT):
                async with self._client.stream("POST", url, content=body, headers=headers) as answer:
                    text = await _start_of(answer)
        except TargetRefused as exc:
            return failed(f"Not sent: {exc}.")
        except (TimeoutError, httpx2.TimeoutException):
            return failed(f"No answer within {TIMEOUT:g} s.")
        except (httpx2.HTTPError, httpx2.InvalidURL) as exc:
            return failed(f"{type(exc).__name__}: {exc}"[:MAX_ANSWER_CHARS])
        return outcome_of(answer.status_code, answer.headers, text,
                          duration_ms=int((time.monotonic() - started) * 1000), now=utcnow())


async def _start_of(answer: httpx2.Response, limit: int = 2048) -> str:
    """The first bytes of an answer's body, as text (the rest is not read)."""
    chunks = bytearray()
    async for chunk in answer.aiter_bytes():
        chunks += chunk
        if len(chunks) >= limit:
            break
    return bytes(chunks[:limit]).decode("utf-8", errors="replace")
