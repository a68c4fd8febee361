"""A client's "Our sub-processors" page: the list as it applies to the client, objecting and approving before the
deadline (and only then, only with a reason, only with RESPOND_TO_CHANGES), another client's ids answering 404,
vendor staff reading it, and the link in change notices."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.db import make_sessionmaker, utcnow
from portal.subprocessors import responses
from portal.subprocessors.models import AuthorisationState, ChangeAuthorisation, ListVersion
from tests.conftest import post_form
from tests.subprocessors.support import agreement, client_person, entry_data, publish, vendor_legal

PAST = dt.timedelta(days=40)  # published this long ago, a 30-day window has closed and the version is in force


@dataclass
class Client:
    org: Organisation
    privacy: Membership
    privacy_actor: Actor


async def client_with_agreement(world: Any, name: str, email: str, **terms: Any) -> Client:
    org = await world.client_org(name)
    await agreement(world, org, **terms)
    membership, actor = await client_person(world, org, Role.PRIVACY_CONTACT, email=email)
    return Client(org, membership, actor)


async def rows_of(engine: AsyncEngine, org: Organisation) -> list[ChangeAuthorisation]:
    """The client's authorisation rows as committed, read in a session of their own."""
    async with make_sessionmaker(engine)() as session:
        return await responses.authorisations_of(session, org)


async def audit_count(engine: AsyncEngine, tag: str | None = None) -> int:
    async with make_sessionmaker(engine)() as session:
        statement = select(func.count()).select_from(AuditEvent)
        if tag is not None:
            statement = statement.where(AuditEvent.tag == tag)
        return int((await session.execute(statement)).scalar_one())


def entry_row(html: str, entry_id: str) -> str:
    """The table row of one entry in the list as it applies."""
    match = re.search(rf'<tr id="entry-{entry_id}">(.*?)</tr>', html, re.S)
    assert match, f"entry {entry_id} is not listed"
    return match.group(1)


def object_url(org: Organisation, row: ChangeAuthorisation) -> str:
    return f"/orgs/{org.id}/subprocessors/changes/{row.id}/object"


def approve_url(org: Organisation, row: ChangeAuthorisation) -> str:
    return f"/orgs/{org.id}/subprocessors/changes/{row.id}/approve"


async def acme_with_pending_change(world: Any, engine: AsyncEngine, *,
                                   now: dt.datetime | None = None) -> tuple[Client, ListVersion, ChangeAuthorisation]:
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    version = await publish(world, legal, entry_data("Vectorly Inc.", locations="US", transfer_mechanism="dpf"),
                            now=now)
    [row] = await rows_of(engine, acme.org)
    return acme, version, row


# ---------------------------------------------------------------- objecting and approving

async def test_privacy_contact_objects_before_the_deadline(world, engine, login_as):
    acme, version, row = await acme_with_pending_change(world, engine)
    pia = await login_as(acme.privacy)

    page = await pia.get(f"/orgs/{acme.org.id}/subprocessors")
    assert page.status_code == 200
    assert "Changes awaiting your answer" in page.text
    assert f'id="v{version.number}"' in page.text  # where the notice's link lands
    assert re.search(r"<strong>\d+ days( \d+ hours?)? left</strong>", page.text), "no countdown to the deadline"
    assert "Vectorly Inc. (legal entity)" in page.text and "United States (US)" in page.text
    assert "EU-US Data Privacy Framework" in page.text
    assert f'action="{object_url(acme.org, row)}"' in page.text
    assert f'action="{approve_url(acme.org, row)}"' in page.text

    response = await post_form(pia, object_url(acme.org, row), {"reason": "Our customers forbid US transfers."})

    assert response.status_code == 303
    assert response.headers["location"] == f"/orgs/{acme.org.id}/subprocessors#change-{row.id}"
    [after] = await rows_of(engine, acme.org)
    assert after.state is AuthorisationState.OBJECTED
    assert after.decided_by == "user:pia@acme.example" and after.decided_at is not None
    [objection] = after.objections
    assert (objection.reason, objection.lodged_by_email, objection.is_open) == (
        "Our customers forbid US transfers.", "pia@acme.example", True)
    assert await audit_count(engine, "subprocessor_objection:lodged") == 1

    shown = await pia.get(response.headers["location"])
    assert "Your objection is recorded" in shown.text
    assert "You objected; the vendor has not resolved the objection yet." in shown.text
    assert "Our customers forbid US transfers." in shown.text
    assert f'action="{object_url(acme.org, row)}"' not in shown.text  # answered: no forms any more


async def test_objecting_or_approving_after_the_deadline_is_refused_and_changes_nothing(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine, now=utcnow() - PAST)
    assert row.state is AuthorisationState.PENDING and row.deadline < utcnow()  # the job has not run yet
    pia = await login_as(acme.privacy)
    before = await audit_count(engine)

    page = await pia.get(f"/orgs/{acme.org.id}/subprocessors")
    assert f'action="{object_url(acme.org, row)}"' not in page.text
    assert "has passed; the outcome is being recorded" in page.text

    refused = await post_form(pia, object_url(acme.org, row), {"reason": "Too late, but still."})
    assert refused.status_code == 400
    assert f"The period to object to the change to Vectorly Inc. ended on {row.deadline:%Y-%m-%d %H:%M} UTC" \
        in refused.text
    not_approved = await post_form(pia, approve_url(acme.org, row))
    assert not_approved.status_code == 400
    assert "The period to approve the change to Vectorly Inc. ended on" in not_approved.text

    [after] = await rows_of(engine, acme.org)
    assert (after.state, after.objections, after.decided_at) == (AuthorisationState.PENDING, [], None)
    assert await audit_count(engine) == before

    async with make_sessionmaker(engine)() as session:
        assert await responses.apply_deadlines(session) == 1
        await session.commit()
    again = await post_form(pia, object_url(acme.org, row), {"reason": "Too late."})
    assert again.status_code == 400
    assert "it is now deemed authorised" in again.text
    [deemed] = await rows_of(engine, acme.org)
    assert deemed.state is AuthorisationState.DEEMED_AUTHORISED and deemed.objections == []


async def test_an_objection_needs_a_reason(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine)
    pia = await login_as(acme.privacy)
    before = await audit_count(engine)

    for reason in ("", "   \n  "):
        response = await post_form(pia, object_url(acme.org, row), {"reason": reason})
        assert response.status_code == 400
        assert "Give the grounds of your objection." in response.text
        assert 'aria-invalid="true"' in response.text  # on the reason of this change's form

    too_long = await post_form(pia, object_url(acme.org, row), {"reason": "x" * (responses.MAX_REASON + 1)})
    assert too_long.status_code == 400 and "longer than 5000 characters" in too_long.text

    [after] = await rows_of(engine, acme.org)
    assert (after.state, after.objections) == (AuthorisationState.PENDING, [])
    assert await audit_count(engine) == before


async def test_a_second_objection_while_one_is_open_is_refused(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine)
    await responses.object_to(world.session, actor=acme.privacy_actor, org=acme.org, authorisation_id=str(row.id),
                              reason="First.")
    await world.commit()
    admin = await login_as(await world.person(acme.org, Role.ADMIN, email="ada@acme.example"))

    response = await post_form(admin, object_url(acme.org, row), {"reason": "Second."})

    assert response.status_code == 400 and "already has an open objection to Vectorly Inc." in response.text
    [after] = await rows_of(engine, acme.org)
    assert [o.reason for o in after.objections] == ["First."]


async def test_approving_authorises_the_change(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine)
    admin = await login_as(await world.person(acme.org, Role.ADMIN, email="ada@acme.example"))

    response = await post_form(admin, approve_url(acme.org, row))

    assert response.status_code == 303
    assert response.headers["location"] == f"/orgs/{acme.org.id}/subprocessors#change-{row.id}"
    [after] = await rows_of(engine, acme.org)
    assert (after.state, after.decided_by) == (AuthorisationState.AUTHORISED, "user:ada@acme.example")
    assert await audit_count(engine, "subprocessor_authorisation:approved") == 1
    page = await admin.get(f"/orgs/{acme.org.id}/subprocessors")
    assert "You approved the change to Vectorly Inc." in page.text
    assert "No change awaits an answer" in page.text
    assert "by ada@acme.example" in page.text


async def test_members_without_the_permission_to_respond_read_but_cannot_answer(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine)
    for role in (Role.MEMBER, Role.SIGNATORY, Role.SECURITY_CONTACT):
        reader = await login_as(await world.person(acme.org, role))
        before = await audit_count(engine)

        page = await reader.get(f"/orgs/{acme.org.id}/subprocessors")
        assert page.status_code == 200, role
        assert "Vectorly Inc." in page.text and "left</strong>" in page.text
        assert '/object"' not in page.text and '/approve"' not in page.text and "<textarea" not in page.text
        assert "admins and privacy contacts object to or approve changes" in page.text

        assert (await post_form(reader, object_url(acme.org, row), {"reason": "No."})).status_code == 403
        assert (await post_form(reader, approve_url(acme.org, row))).status_code == 403
        assert await audit_count(engine) == before

    [after] = await rows_of(engine, acme.org)
    assert (after.state, after.objections) == (AuthorisationState.PENDING, [])


async def test_forms_without_the_csrf_token_change_nothing(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine)
    pia = await login_as(acme.privacy)
    before = await audit_count(engine)

    assert (await pia.post(object_url(acme.org, row), data={"reason": "Forged."})).status_code == 403
    assert (await pia.post(approve_url(acme.org, row), data={"csrf_token": "forged"})).status_code == 403

    [after] = await rows_of(engine, acme.org)
    assert (after.state, after.objections) == (AuthorisationState.PENDING, [])
    assert await audit_count(engine) == before


# ---------------------------------------------------------------- tenants and vendor staff

async def test_another_clients_page_and_changes_answer_404_and_leak_nothing(world, engine, login_as):
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    globex = await client_with_agreement(world, "Globex Corp", "gil@globex.example")
    await publish(world, legal, "Vectorly Inc.")
    [acme_row], [globex_row] = await rows_of(engine, acme.org), await rows_of(engine, globex.org)
    gil = await login_as(globex.privacy)
    before = await audit_count(engine)

    attempts = [
        await gil.get(f"/orgs/{acme.org.id}/subprocessors"),
        await post_form(gil, object_url(acme.org, acme_row), {"reason": "Not mine."}),
        await post_form(gil, approve_url(acme.org, acme_row)),
        # Their own organisation with Acme's row, and a malformed id.
        await post_form(gil, object_url(globex.org, acme_row), {"reason": "Not mine."}),
        await post_form(gil, approve_url(globex.org, acme_row)),
        await post_form(gil, f"/orgs/{globex.org.id}/subprocessors/changes/not-a-uuid/approve"),
    ]

    for response in attempts:
        assert response.status_code == 404, response.request.url
        for secret in ("Acme Logistics", str(acme.org.id), str(acme_row.id), "pia@acme.example"):
            assert secret not in response.text
    [acme_after] = await rows_of(engine, acme.org)
    assert (acme_after.state, acme_after.objections) == (AuthorisationState.PENDING, [])
    assert await audit_count(engine) == before
    own = await gil.get(f"/orgs/{globex.org.id}/subprocessors")
    assert own.status_code == 200 and str(globex_row.id) in own.text and str(acme_row.id) not in own.text


async def test_the_vendor_organisation_has_no_client_view(world, login_as):
    vendor = await world.vendor()
    owner = await login_as(await world.person(vendor, Role.OWNER))
    assert (await owner.get(f"/orgs/{vendor.id}/subprocessors")).status_code == 404


async def test_vendor_staff_read_a_clients_view_without_answering(world, engine, login_as):
    acme, _version, row = await acme_with_pending_change(world, engine)
    vendor = await world.vendor()
    viewer = await login_as(await world.person(vendor, Role.VIEWER))
    owner = await login_as(await world.person(vendor, Role.OWNER))
    before = await audit_count(engine)

    page = await viewer.get(f"/orgs/{acme.org.id}/subprocessors")
    assert page.status_code == 200
    assert "Sub-processors as they apply to Acme Logistics" in page.text
    assert "Read-only: only Acme Logistics's own admins and privacy contacts" in page.text
    assert "Vectorly Inc." in page.text and '/object"' not in page.text and '/approve"' not in page.text
    assert "General written authorisation" in page.text and "30 days before a change takes effect" in page.text

    # Even the owner, who holds every permission at the vendor, does not answer for a client.
    assert (await post_form(owner, object_url(acme.org, row), {"reason": "On their behalf."})).status_code == 404
    assert (await post_form(owner, approve_url(acme.org, row))).status_code == 404
    [after] = await rows_of(engine, acme.org)
    assert after.state is AuthorisationState.PENDING
    assert await audit_count(engine) == before


# ---------------------------------------------------------------- the list as it applies

async def test_an_entry_objected_to_is_not_in_force_for_that_client_only(world, engine, login_as):
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    globex = await client_with_agreement(world, "Globex Corp", "gil@globex.example", days=35)
    published = utcnow() - PAST
    host = entry_data("Hostwerk GmbH")
    await publish(world, legal, host, now=published - dt.timedelta(days=40))
    hostwerk_id = next(r.entry_id for r in await rows_of(engine, acme.org))
    version = await publish(world, legal, entry_data("Vectorly Inc.", parent_id=str(hostwerk_id)), now=published)
    vectorly = next(r for r in await rows_of(engine, acme.org) if r.entry_name == "Vectorly Inc.")
    await responses.object_to(world.session, actor=acme.privacy_actor, org=acme.org,
                              authorisation_id=str(vectorly.id), reason="Not for our data.",
                              now=published + dt.timedelta(days=1))
    await world.commit()
    async with make_sessionmaker(engine)() as session:
        assert await responses.apply_deadlines(session) == 3  # Hostwerk for both, Vectorly for Globex
        await session.commit()

    acme_page = (await (await login_as(acme.privacy)).get(f"/orgs/{acme.org.id}/subprocessors")).text
    globex_page = (await (await login_as(globex.privacy)).get(f"/orgs/{globex.org.id}/subprocessors")).text

    objected = entry_row(acme_page, str(vectorly.entry_id))
    assert "<strong>Not in force</strong>" in objected
    assert f"New sub-processor in version {version.number}: You objected" in objected
    assert "engaged by Hostwerk GmbH" in objected  # the chain: under the entry that engages it
    assert acme_page.index(f'id="entry-{hostwerk_id}"') < acme_page.index(f'id="entry-{vectorly.entry_id}"')
    assert "In force" in entry_row(acme_page, str(hostwerk_id))
    assert "1 of 2</strong> entries are not in force" in acme_page
    assert "Not for our data." in acme_page

    in_force = entry_row(globex_page, str(vectorly.entry_id))
    assert "In force" in in_force and "Not in force" not in in_force
    assert "Deemed authorised: no objection by the deadline" in globex_page
    assert "35 days before a change takes effect" in globex_page
    assert "Not for our data." not in globex_page and "Acme" not in globex_page


async def test_a_client_without_an_active_agreement_is_told_so(world, login_as):
    legal = await vendor_legal(world)
    org = await world.client_org("Initech")
    await publish(world, legal, "Hostwerk GmbH")
    member = await login_as(await world.person(org, Role.ADMIN))

    page = await member.get(f"/orgs/{org.id}/subprocessors")

    assert page.status_code == 200
    assert "No active data processing agreement." in page.text
    assert "not notified of sub-processor changes under one" in page.text
    # The upcoming change is still shown, for information.
    assert "Upcoming changes for your information" in page.text and "Hostwerk GmbH" in page.text
    assert "no authorisation was requested from your organisation" in page.text


# ---------------------------------------------------------------- the link in change notices

async def test_the_notice_link_leads_each_reader_to_where_they_act(world, engine, client, login_as):
    acme, version, _row = await acme_with_pending_change(world, engine)
    link = f"/subprocessors/versions/{version.number}/respond"

    anonymous = await client.get(link)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == f"/login?next=%2Fsubprocessors%2Fversions%2F{version.number}%2Frespond"

    member = await login_as(await world.person(acme.org, Role.MEMBER))
    to_page = await member.get(link)
    assert to_page.status_code == 303
    assert to_page.headers["location"] == f"/orgs/{acme.org.id}/subprocessors#v{version.number}"

    staff = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    to_version = await staff.get(link)
    assert to_version.status_code == 303
    assert to_version.headers["location"] == f"/subprocessors/versions/{version.number}"

    assert (await member.get("/subprocessors/versions/99/respond")).status_code == 404
    assert (await member.get("/subprocessors/versions/latest/respond")).status_code == 404
