"""API fixtures: tokens issued through the real service, a client without cookies, each tenant's own objects
(a webhook endpoint, an incident with its breach notice and the notice's deliveries, a draft agreement), and example
request bodies built from the request schemas."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.accounts.models import Membership, MembershipRole, Organisation
from portal.accounts.roles import Role
from portal.accounts.tokens.models import SCOPES, ApiToken
from portal.accounts.tokens.service import create_token
from portal.actors import Actor
from portal.agreements.models import Agreement, AgreementEvent
from portal.ai_commitments import ledger
from portal.ai_commitments.models import Acceptance, Decline, TrainingInstruction
from portal.api.registry import Endpoint
from portal.breaches import notices
from portal.breaches.models import AffectedClient, BreachNotice, Incident
from portal.dpa import fields, profile, templates
from portal.dpa.default_template import build_default_docx
from portal.dpa.models import TemplateStatus, TemplateVersion
from portal.dpa.upload import ValidatedTemplate, validate_docx
from portal.notifications.models import Channel, Delivery, Notice, Subscription, WebhookEndpoint
from portal.security import encrypt_field
from portal.settings import Settings
from portal.signing import preparation
from tests.ai_commitments.support import changed, commitments
from tests.breaches.support import affect, notice_input, open_incident
from tests.conftest import SMTPSink, make_settings
from tests.signing.support import ORIGIN, SYSTEM, actor, client_details, loaded, vendor_profile_values

IssueToken = Callable[..., Awaitable[tuple[ApiToken, str]]]


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink) -> Settings:
    """The usual settings, except that webhook URLs are not resolved: example bodies name hosts that do not
    exist, and tests must not depend on DNS."""
    return make_settings(database_url, tmp_path, smtp_url=smtp_sink.url, webhook_allow_private=True)


@pytest.fixture
def issue_token(world: Any) -> IssueToken:
    """``await issue_token(org, "org:read", days=None, name=None)`` gives (stored token, plaintext); no scope
    named means every scope; the organisation's first admin or owner, if any, is its creator."""
    count = 0

    async def issue(org: Organisation, *scopes: str, days: int | None = None,
                    name: str | None = None) -> tuple[ApiToken, str]:
        nonlocal count
        count += 1
        token, plaintext = await create_token(world.session, actor=Actor.system("test"), org=org,
                                              name=name or f"tool {count}", scopes=list(scopes or SCOPES),
                                              days=days)
        # As in the portal, where an admin (an owner at the vendor) makes tokens: the first of them is the creator.
        admin = (await world.session.execute(
            select(Membership.user_id).join(MembershipRole)
            .where(Membership.org_id == org.id, MembershipRole.role.in_([Role.ADMIN, Role.OWNER]))
            .order_by(Membership.created_at).limit(1)
        )).scalar_one_or_none()
        token.created_by_id = admin
        await world.commit()
        return token, plaintext

    return issue


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
async def machine(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A machine client: no cookies, redirects not followed."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def check_schema(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Validate ``instance`` against ``schema``, whose ``$ref``s point into ``document``'s components."""
    validator = Draft202012Validator({**schema, "components": document["components"]},
                                     format_checker=FormatChecker())
    validator.validate(instance)


ERROR_REF = {"$ref": "#/components/schemas/Error"}


# ---------------------------------------------------------------- each tenant's own objects

PATH_PARAMETERS = frozenset({"org_id", "endpoint_id", "delivery_id", "membership_id", "agreement_id", "kind",
                             "incident_id", "notice_id"})
"""Every path parameter the API tests know how to fill with a tenant's real object (``TenantObjects.values``)."""
VOCABULARY_PARAMETERS = frozenset({"kind"})
"""Path parameters that name no tenant's object but a word of the API (a document kind): the same for every tenant,
so there is no other tenant's value to point them at."""


@dataclass(frozen=True)
class TenantObjects:
    """A client organisation with one object for every kind of path parameter, and what identifies them."""

    org: Organisation
    endpoint: WebhookEndpoint  # a webhook endpoint for `breaches`, with a real encrypted secret
    incident: Incident  # an incident of which only this organisation was notified
    breach_notice: BreachNotice  # its notice to the organisation (``notice_id`` in the breach API)
    notice: Notice  # what the notification system sent for it
    delivery: Delivery  # the notice's email to the security contact
    contact: Membership  # the security contact
    agreement: Agreement  # a draft, so its text (kind ``document``) can be downloaded
    traces: tuple[str, ...]  # names, emails and ids no other tenant may ever see

    @property
    def values(self) -> dict[str, str]:
        values = {"org_id": str(self.org.id), "endpoint_id": str(self.endpoint.id),
                  "delivery_id": str(self.delivery.id), "membership_id": str(self.contact.id),
                  "agreement_id": str(self.agreement.id), "kind": "document", "incident_id": str(self.incident.id),
                  "notice_id": str(self.breach_notice.id)}
        assert set(values) == PATH_PARAMETERS
        return values


AddObjects = Callable[..., Awaitable[TenantObjects]]


@pytest.fixture
def add_objects(world: Any) -> AddObjects:
    """``await add_objects(org, "Globex")`` gives ``org`` a security contact, a webhook endpoint, an incident of its
    own with the one breach notice sent for it (so deliveries to both: the organisation's only notice), and a draft
    agreement prepared by an admin who also signs (its document rendered from the DPA template, published first if
    none is), committed. A draft, not a sent agreement: sending notifies."""

    async def add(org: Organisation, label: str) -> TenantObjects:
        slug = label.lower()
        contact_email, contact_name = f"security@{slug}.example", f"{label} Security Contact"
        contact = await world.person(org, Role.SECURITY_CONTACT, email=contact_email, name=contact_name)
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        endpoint = WebhookEndpoint(id=uuid.uuid4(), org_id=org.id, url=f"https://hooks.{slug}.example/x",
                                   topics=["breaches"],
                                   secret_encrypted=encrypt_field(world.settings.secret_key, secret))
        world.session.add(endpoint)
        await world.session.flush()
        incident = await open_incident(world, title=f"{label} misdirected export",
                                       internal_notes=f"{label} root cause: ticket SEC-{slug}")
        await affect(world.session, incident, org)
        figures = (f"{label} subjects: about 120", f"{label} records: about 480")
        breach_notice = await notices.send_notice(
            world.session, actor=SYSTEM, incident=incident, org=org, phase="initial", settings=world.settings,
            raw=notice_input(*figures, nature=f"{label} contacts were exported", contact_point=contact_email))
        await world.commit()
        notice = await world.session.get_one(Notice, breach_notice.notice_id)
        deliveries = list((await world.session.execute(
            select(Delivery).where(Delivery.notice_id == notice.id).order_by(Delivery.channel)
        )).scalars())
        await world.commit()
        assert {(d.channel, d.email, d.endpoint_id) for d in deliveries} == {
            (Channel.EMAIL, contact_email, None), (Channel.WEBHOOK, None, endpoint.id)}
        [delivery] = [d for d in deliveries if d.channel is Channel.EMAIL]
        agreement, signer = await draft_agreement(org, label)
        await widening_commitments(world)
        traces = (org.name, str(org.id), org.slug, contact_email, contact_name, str(contact.id), str(endpoint.id),
                  endpoint.url,
                  secret, str(notice.id), *(str(d.id) for d in deliveries), str(incident.id), incident.reference,
                  incident.title, str(breach_notice.id), *figures,
                  str(agreement.id), agreement.reference, agreement.document_sha256, signer.user.email,
                  signer.user.name)
        return TenantObjects(org, endpoint, incident, breach_notice, notice, delivery, contact, agreement, traces)

    async def draft_agreement(org: Organisation, label: str) -> tuple[Agreement, Membership]:
        if await templates.latest_published(world.session) is None:
            await publish_default_template(world)
        signer = await loaded(world, await world.person(org, Role.ADMIN, Role.SIGNATORY, name=f"{label} Signer",
                                                        email=f"signer@{label.lower()}.example"))
        agreement = await preparation.save_draft(
            world.session, actor=actor(signer), org=org, origin=ORIGIN, settings=world.settings,
            data=preparation.DraftInput(details=client_details(org.name), signatory_id=str(signer.user_id), terms={}))
        await world.commit()
        return agreement, signer

    return add


async def widening_commitments(world: Any) -> None:
    """Once: AI commitments version 1 (training on prompts only if the client opts in), published before any
    client joined, and version 2, which keeps telemetry longer, so it waits for each client's acceptance (the
    example body of the acceptance endpoint names it). No model provider is named, so no sub-processor list (and
    no notice) is needed."""
    if await ledger.latest(world.session) is not None:
        return
    first = commitments(prompts={"training_use": "customer_opt_in", "training_models": "The client's own fine-tune"})
    for classes in first["data_classes"].values():
        classes["providers"] = []
    first["features"] = []
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    for number, (document, now) in enumerate([(first, long_ago), (changed(first, "telemetry",
                                                                         vendor_retention_days=90), None)], 1):
        draft = await ledger.save_draft(world.session, actor=SYSTEM, raw=document)
        await ledger.publish(world.session, actor=SYSTEM, draft_id=str(draft.id), reason=f"Version {number}",
                             effective_date=(now or dt.datetime.now(dt.UTC)).date().isoformat(), now=now)
    await world.commit()


@functools.cache
def _default_docx() -> ValidatedTemplate:
    return validate_docx(build_default_docx(), allowed=fields.allowed_names(), loops=fields.loop_bindings())


async def publish_default_template(world: Any) -> TemplateVersion:
    """The shipped default DPA published as version 1, with the vendor's profile filled in: as
    ``tests.signing.support.published_template``, except that the draft skips the upload's sandboxed test render
    (a fresh process, a quarter of a second per test here), which tests/dpa puts the shipped template through."""
    await profile.save_profile(world.session, actor=SYSTEM, raw=vendor_profile_values())
    checked = _default_docx()
    draft = TemplateVersion(status=TemplateStatus.DRAFT, filename=templates.DEFAULT_FILENAME, docx=checked.data,
                            sha256=checked.sha256, placeholders=list(checked.placeholders), uploaded_by=SYSTEM.label)
    world.session.add(draft)
    await world.session.flush()
    return await templates.publish(world.session, actor=SYSTEM, version_id=str(draft.id), changelog="First")


async def tenant_state(engine: AsyncEngine, org: Organisation) -> dict[str, list[Any]]:
    """Every row of ``org``'s webhook endpoints, notices, deliveries, subscriptions, agreements and their events,
    incidents it is affected by and breach notices, AI commitments acceptances, declines and training instructions, and
    members' roles, read on a connection of its own."""
    async with engine.connect() as connection:
        state = {model.__tablename__: [tuple(row) for row in (await connection.execute(
            select(model.__table__).where(model.org_id == org.id).order_by(model.id)  # type: ignore[attr-defined]
        )).all()] for model in (WebhookEndpoint, Notice, Delivery, Subscription, Agreement, AgreementEvent,
                                AffectedClient, BreachNotice, Acceptance, Decline, TrainingInstruction)}
        state["membership_roles"] = [tuple(row) for row in (await connection.execute(
            select(MembershipRole.membership_id, MembershipRole.role).join(Membership)
            .where(Membership.org_id == org.id).order_by(MembershipRole.membership_id, MembershipRole.role)
        )).all()]
        return state


# ---------------------------------------------------------------- example bodies

def example_of(schema: dict[str, Any], components: dict[str, dict[str, Any]]) -> Any:
    """A valid instance of ``schema`` (every declared property filled), as a real client would send it."""
    if "$ref" in schema:
        return example_of(components[schema["$ref"].rsplit("/", 1)[1]], components)
    if "const" in schema:
        return schema["const"]
    if "examples" in schema:
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "object":
        return {name: example_of(prop, components) for name, prop in schema.get("properties", {}).items()}
    if kind == "array":
        return [example_of(schema.get("items", {}), components)] * max(1, schema.get("minItems", 1))
    if kind == "string":
        unique = uuid.uuid4().hex[:12]
        by_format = {"uri": f"https://hooks.example.net/{unique}", "email": f"{unique}@example.net",
                     "uuid": str(uuid.uuid4()), "date-time": dt.datetime.now(dt.UTC).isoformat()}
        text = by_format.get(schema.get("format", ""), f"example {unique}")
        return text[:schema["maxLength"]] if "maxLength" in schema else text
    if kind in {"integer", "number"}:
        return schema.get("minimum", 0)
    if kind == "boolean":
        return True
    raise AssertionError(f"teach example_of to build {schema!r}")


def example_body(endpoint: Endpoint, document: dict[str, Any]) -> dict[str, Any] | None:
    """A valid JSON body for ``endpoint`` built from its documented request schema (None when it takes none)."""
    if endpoint.request is None:
        return None
    schema = document["paths"][endpoint.full_path][endpoint.method.lower()]["requestBody"]["content"][
        "application/json"]["schema"]
    body = example_of(schema, document["components"]["schemas"])
    check_schema(document, schema, body)
    return body
