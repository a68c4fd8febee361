"""The vendor's objections board and resolve form: an objection lodged by a client is listed with what the legal
team needs; each outcome is recorded with its consequence (withdrawn authorises the change, terminated ends the
agreement) and the client is notified; a missing note or outcome changes nothing; who may see and resolve."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.agreements.models import Agreement, AgreementStatus
from portal.audit.models import AuditEvent
from portal.db import make_sessionmaker
from portal.notifications.models import Notice
from portal.subprocessors import responses
from portal.subprocessors.models import AuthorisationState, ChangeAuthorisation, Objection, Resolution
from tests.conftest import post_form
from tests.subprocessors.support import agreement, client_person, entry_data, publish, vendor_legal

REASON = "Our customers' data must not leave the EEA."


@dataclass
class Lodged:
    org: Organisation
    agreement: Agreement
    authorisation_id: Any
    objection_id: Any


async def lodged_objection(world: Any, engine: AsyncEngine, name: str = "Acme Logistics") -> Lodged:
    """A client with an agreement objects, through the service, to the US sub-processor of version 1."""
    org = await world.client_org(name)
    signed = await agreement(world, org)
    await publish(world, await vendor_legal(world), entry_data("Vectorly Inc.", locations="US",
                                                               transfer_mechanism="dpf"))
    async with make_sessionmaker(engine)() as session:
        [row] = await responses.authorisations_of(session, org)
    _membership, privacy = await client_person(world, org, Role.PRIVACY_CONTACT, email="pia@acme.example")
    objection = await responses.object_to(world.session, actor=privacy, org=org, authorisation_id=str(row.id),
                                          reason=REASON)
    await world.commit()
    return Lodged(org, signed, row.id, objection.id)


def resolve_url(lodged: Lodged) -> str:
    return f"/orgs/{lodged.org.id}/objections/{lodged.objection_id}/resolve"


async def fetch(engine: AsyncEngine, model: Any, key: Any) -> Any:
    async with make_sessionmaker(engine)() as session:
        return await session.get(model, key)


async def count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with make_sessionmaker(engine)() as session:
        statement = select(func.count()).select_from(model)
        for condition in where:
            statement = statement.where(condition)
        return int((await session.execute(statement)).scalar_one())


@pytest.fixture
async def legal(world, login_as):
    return await login_as(await world.person(await world.vendor(), Role.LEGAL, email="lena@lumen.example"))


async def test_the_board_lists_an_open_objection_with_what_the_team_needs(legal, world, engine):
    lodged = await lodged_objection(world, engine)

    board = await legal.get("/registry/objections")

    assert board.status_code == 200
    text = html.unescape(board.text)
    row = text[text.index(f'id="objection-{lodged.objection_id}"'):]
    row = row[:row.index("</tr>")]
    for shown in ("Acme Logistics", "Vectorly Inc.", "New sub-processor", "version 1", "pia@acme.example", REASON,
                  "UTC", f'href="{resolve_url(lodged)}"'):
        assert shown in row, shown

    page = await legal.get(resolve_url(lodged))
    assert page.status_code == 200
    for resolution in Resolution:
        assert f'name="resolution" value="{resolution.value}"' in page.text
        assert resolution.label in page.text


@pytest.mark.parametrize("outcome", list(Resolution))
async def test_each_outcome_resolves_the_objection_and_notifies_the_client(outcome, legal, world, engine):
    lodged = await lodged_objection(world, engine)
    other = await world.client_org("Beta Bank")
    await agreement(world, other)
    notices_before = await count(engine, Notice, Notice.type == "objection_resolved")

    resolved = await post_form(legal, resolve_url(lodged), {"resolution": outcome.value,
                                                            "note": "We discussed it on the phone."})

    assert resolved.status_code == 303 and resolved.headers["location"] == "/registry/objections"
    objection = await fetch(engine, Objection, lodged.objection_id)
    assert not objection.is_open and objection.resolution is outcome
    assert objection.resolution_note == "We discussed it on the phone."
    assert objection.resolved_by == "user:lena@lumen.example"
    row = await fetch(engine, ChangeAuthorisation, lodged.authorisation_id)
    expected_state = AuthorisationState.AUTHORISED if outcome is Resolution.WITHDRAWN else AuthorisationState.OBJECTED
    assert row.state is expected_state
    signed = await fetch(engine, Agreement, lodged.agreement.id)
    expected_status = AgreementStatus.TERMINATED if outcome is Resolution.TERMINATED else AgreementStatus.EXECUTED
    assert signed.status is expected_status
    assert await count(engine, Agreement, Agreement.status == AgreementStatus.EXECUTED) == \
        (1 if outcome is Resolution.TERMINATED else 2)  # the other client's agreement is untouched
    [notice] = (await _notices(engine, "objection_resolved"))[notices_before:]
    assert notice.org_id == lodged.org.id and outcome.label in notice.title
    assert await count(engine, AuditEvent, AuditEvent.tag == "subprocessor_objection:resolved") == 1

    board = html.unescape((await legal.get("/registry/objections")).text)
    assert "No open objections." in board and REASON not in board  # only open ones by default
    everything = html.unescape((await legal.get("/registry/objections?all=1")).text)
    assert REASON in everything and outcome.label in everything and "We discussed it on the phone." in everything
    assert f'href="{resolve_url(lodged)}"' not in everything


async def _notices(engine: AsyncEngine, notice_type: str) -> list[Notice]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.execute(select(Notice).where(Notice.type == notice_type)
                                           .order_by(Notice.created_at))).scalars())


@pytest.mark.parametrize(("form", "field", "message"), [
    ({"resolution": "withdrawn", "note": "   "}, "note", "Write a note for the client: what was decided and why."),
    ({"note": "Agreed on the phone."}, "resolution", "Choose how the objection was resolved."),
    ({"resolution": "forgiven", "note": "Agreed on the phone."}, "resolution",
     "Choose how the objection was resolved."),
])
async def test_a_resolution_without_an_outcome_or_a_note_changes_nothing(form, field, message, legal, world, engine):
    lodged = await lodged_objection(world, engine)
    audit_before, notices_before = await count(engine, AuditEvent), await count(engine, Notice)

    refused = await post_form(legal, resolve_url(lodged), form)

    assert refused.status_code == 400
    assert f'<p class="flash flash-error" id="{field}-error" role="alert">{html.escape(message)}</p>' in refused.text
    if form.get("note", "").strip():
        assert form["note"] in refused.text  # kept as typed
    objection = await fetch(engine, Objection, lodged.objection_id)
    assert objection.is_open and objection.resolution is None
    assert (await fetch(engine, ChangeAuthorisation, lodged.authorisation_id)).state is AuthorisationState.OBJECTED
    assert await count(engine, AuditEvent) == audit_before and await count(engine, Notice) == notices_before


async def test_a_resolved_objection_cannot_be_resolved_again(legal, world, engine):
    lodged = await lodged_objection(world, engine)
    await post_form(legal, resolve_url(lodged), {"resolution": "accommodated", "note": "Kept in the EU."})
    audit_before = await count(engine, AuditEvent)

    page = await legal.get(resolve_url(lodged))
    again = await post_form(legal, resolve_url(lodged), {"resolution": "terminated", "note": "Changed our mind."})

    assert page.status_code == 200 and "Kept in the EU." in page.text and 'name="note"' not in page.text
    assert again.status_code == 400 and "This objection is already resolved." in again.text
    assert (await fetch(engine, Agreement, lodged.agreement.id)).status is AgreementStatus.EXECUTED
    assert await count(engine, AuditEvent) == audit_before


async def test_viewers_read_the_board_and_only_managers_resolve(world, login_as, engine):
    lodged = await lodged_objection(world, engine)
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    security = await login_as(await world.person(await world.vendor(), Role.SECURITY))

    for staff in (viewer, security):
        board = await staff.get("/registry/objections")
        assert board.status_code == 200 and REASON in html.unescape(board.text)
        assert resolve_url(lodged) not in board.text
        assert (await staff.get(resolve_url(lodged))).status_code == 403
        refused = await post_form(staff, resolve_url(lodged), {"resolution": "withdrawn", "note": "No."})
        assert refused.status_code == 403
    assert (await fetch(engine, Objection, lodged.objection_id)).is_open


async def test_clients_and_wrong_paths_answer_404(legal, world, login_as, engine):
    lodged = await lodged_objection(world, engine)
    own_admin = await login_as(await world.person(lodged.org, Role.ADMIN))
    other_org = await world.client_org("Beta Bank")

    assert (await own_admin.get("/registry/objections")).status_code == 404
    assert (await own_admin.get(resolve_url(lodged))).status_code == 404
    assert (await post_form(own_admin, resolve_url(lodged), {"resolution": "withdrawn", "note": "x"})).status_code \
        == 404
    for url in (f"/orgs/{other_org.id}/objections/{lodged.objection_id}/resolve",  # the objection of another org
                f"/orgs/{lodged.org.id}/objections/{lodged.authorisation_id}/resolve",
                f"/orgs/{lodged.org.id}/objections/not-an-id/resolve"):
        assert (await legal.get(url)).status_code == 404, url
        assert (await post_form(legal, url, {"resolution": "withdrawn", "note": "x"})).status_code == 404, url
    assert (await fetch(engine, Objection, lodged.objection_id)).is_open
