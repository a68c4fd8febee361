"""`portal admin create` and `portal demo` against the test database."""

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Membership, Organisation, User
from portal.accounts.roles import OrgKind
from portal.agreements.models import Agreement, AgreementDocument
from portal.ai_commitments import instructions, standing
from portal.audit.models import AuditEvent
from portal.breaches.models import BreachNotice, Incident
from portal.cli import main
from portal.demo import CLIENTS, DEMO_PASSWORD, VENDOR_STAFF
from portal.dpa.models import TemplateVersion
from portal.notifications.models import Delivery, Notice
from portal.security import verify_password
from portal.signing.bundle_check import verify_bundle
from portal.subprocessors.models import ChangeAuthorisation, ListVersion, Objection


async def run_cli(argv):
    """The command runs its own event loop (asyncio.run), so it gets a thread of its own."""
    await asyncio.to_thread(main, argv)


@pytest.fixture
def cli_env(monkeypatch, database_url, tmp_path, db):
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PORTAL_SECRET_KEY", "cli-test-secret")
    return tmp_path


async def test_admin_create_makes_the_vendor_and_its_first_owner(cli_env, db, capsys):
    await run_cli(["admin", "create", "--email", "Olivia@Nordlicht.example", "--name", "Olivia Owner",
          "--org", "Nordlicht AI GmbH", "--password", "a long enough passphrase"])

    assert "Created vendor owner olivia@nordlicht.example" in capsys.readouterr().out
    vendor = (await db.execute(select(Organisation))).scalar_one()
    assert vendor.is_vendor and vendor.name == "Nordlicht AI GmbH"
    user = (await db.execute(select(User))).scalar_one()
    assert verify_password(user.password_hash, "a long enough passphrase")
    tags = set((await db.execute(select(AuditEvent.tag))).scalars())
    assert {"organisation:created", "membership:created"} <= tags


async def test_admin_create_refuses_a_weak_password_or_a_taken_email(cli_env, db, capsys):
    args = ["admin", "create", "--email", "o@n.example", "--name", "O", "--org", "N"]
    with pytest.raises(SystemExit) as weak:
        await run_cli([*args, "--password", "short"])
    assert weak.value.code == 1
    assert "stronger password" in capsys.readouterr().err
    assert await db.scalar(select(func.count()).select_from(Organisation)) == 0

    await run_cli([*args, "--password", "a long enough passphrase"])
    with pytest.raises(SystemExit):
        await run_cli([*args, "--password", "a long enough passphrase"])
    assert "already exists" in capsys.readouterr().err
    assert await db.scalar(select(func.count()).select_from(User)) == 1


async def test_demo_loads_once_and_prints_working_logins(cli_env, db, capsys):
    await run_cli(["demo"])
    out = capsys.readouterr().out
    assert DEMO_PASSWORD in out
    for person in VENDOR_STAFF:
        assert person.email in out
    people = sum(len(p) for p in CLIENTS.values()) + len(VENDOR_STAFF)
    assert await db.scalar(select(func.count()).select_from(Membership)) == people
    assert await db.scalar(select(func.count()).select_from(Organisation)) == len(CLIENTS) + 1
    user = (await db.execute(select(User).where(User.email == VENDOR_STAFF[0].email))).scalar_one()
    assert verify_password(user.password_hash, DEMO_PASSWORD)
    failures = (await db.execute(select(Notice).where(Notice.type == "subprocessor_failure"))).scalars().all()
    assert len(failures) == len(CLIENTS)  # one notice to each client, queued for the worker
    assert await db.scalar(select(func.count()).select_from(Delivery)) >= len(CLIENTS)

    await run_cli(["demo"])
    assert "no demo data was added" in capsys.readouterr().out
    assert await db.scalar(select(func.count()).select_from(Membership)) == people


async def test_audit_verify_reports_an_intact_chain(cli_env, db, capsys):
    await run_cli(["demo"])
    capsys.readouterr()
    await run_cli(["audit", "verify"])
    assert "Audit trail intact" in capsys.readouterr().out


async def test_demo_has_a_list_an_upcoming_change_an_objection_and_a_published_template(cli_env, db, capsys):
    await run_cli(["demo"])
    today = dt.datetime.now(dt.UTC).date()
    versions = (await db.execute(select(ListVersion).order_by(ListVersion.number))).scalars().all()
    assert [v.number for v in versions] == [1, 2]
    assert versions[0].effective_date <= today < versions[1].effective_date
    assert {c["kind"] for c in versions[1].changes} == {"added", "replaced"}
    [objection] = (await db.execute(select(Objection))).scalars().all()
    assert objection.is_open and "EEA" in objection.reason
    states = {(row.org_id, row.version_id, row.state.value) for row in
              (await db.execute(select(ChangeAuthorisation))).scalars()}
    first = {state for _org, version, state in states if version == versions[0].id}
    assert first == {"authorised", "deemed_authorised"}  # specific authorisation approved, general by silence
    templates = (await db.execute(select(TemplateVersion).order_by(TemplateVersion.number))).scalars().all()
    assert [(t.number, t.filename) for t in templates] == [(1, "default_dpa.docx"), (2, "dpa-v2.docx")]


async def test_demo_has_an_executed_sealed_agreement_and_an_open_re_signing_campaign(cli_env, db, capsys):
    await run_cli(["demo"])
    rows = (await db.execute(select(Organisation.name, Agreement.status, TemplateVersion.number)
                             .join(Agreement, Agreement.org_id == Organisation.id)  # tenancy: test inspection
                             .outerjoin(TemplateVersion, TemplateVersion.id == Agreement.template_version_id)
                             .order_by(Organisation.name, Agreement.created_at))).all()
    by_client = {name: [(status.value, number) for n, status, number in rows if n == name] for name in CLIENTS}
    assert by_client["Acme Logistics SE"] == [("superseded", None), ("executed", 1), ("awaiting_signature", 2)]
    assert by_client["Brightwell Health BV"] == [("executed", None), ("superseded", 1), ("awaiting_signature", 2)]
    assert by_client["Copperleaf Retail AB"] == [("executed", None)]  # signed on paper: asked for its details
    bundle = (await db.execute(select(AgreementDocument.data).where(AgreementDocument.kind == "bundle"))).scalar_one()
    report = verify_bundle(bundle)
    assert report.ok and report.record["ai_commitments"]["version"] == 1  # Annex V: the commitments in force


async def test_demo_has_a_closed_breach_with_notices_and_acknowledgements(cli_env, db, capsys):
    await run_cli(["demo"])
    [incident] = (await db.execute(select(Incident))).scalars().all()
    assert incident.status.value == "closed" and incident.closure_rationale
    sent = (await db.execute(select(BreachNotice.org_id, BreachNotice.phase, BreachNotice.acknowledged_at)
                             .order_by(BreachNotice.org_id, BreachNotice.seq))).all()
    assert len(sent) == 4 and {phase.value for _org, phase, _ack in sent} == {"initial", "final"}
    assert sum(1 for *_rest, acked in sent if acked is not None) == 2  # Acme acknowledged both of its notices


async def test_demo_has_a_widening_ai_commitments_version_one_client_accepted_one_declined(cli_env, db, capsys):
    await run_cli(["demo"])
    clients = (await db.execute(select(Organisation).where(Organisation.kind == OrgKind.CLIENT)
                                .order_by(Organisation.name))).scalars().all()
    states = {org.name: (position.state.value, position.applied.version.number)
              for org, position in zip(clients, await standing.standings(db, clients), strict=True)}
    assert states == {"Acme Logistics SE": ("in_effect", 2), "Brightwell Health BV": ("declined", 1),
                      "Copperleaf Retail AB": ("pending_acceptance", 1)}
    acme = next(org for org in clients if org.name.startswith("Acme"))
    assert {s.data_class for s in await instructions.settings_of(db, acme) if s.enabled} == {"feedback"}
