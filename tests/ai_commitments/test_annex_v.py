"""The DPA's Annex V shows the AI commitments version in force when the document is rendered, and the evidence of
the executed agreement names that version and its hash (issue item 6)."""

from __future__ import annotations

import datetime as dt

from portal.agreements.document import document_blocks
from portal.ai_commitments import ledger
from portal.signing.bundle_check import verify_bundle
from tests.ai_commitments.support import SYSTEM, commitments, register_provider
from tests.signing.support import executed_agreement, parties, published_template


async def test_annex_v_and_the_evidence_carry_the_version_in_force(world, settings, db):
    from sqlalchemy import select
    from sqlalchemy.orm import undefer

    from portal.agreements.models import AgreementDocument, DocumentKind

    await register_provider(world)
    draft = await ledger.save_draft(db, actor=SYSTEM, raw=commitments())
    version = await ledger.publish(db, actor=SYSTEM, draft_id=str(draft.id),
                                   effective_date=dt.date.today().isoformat(), reason="First commitments")
    await world.commit()
    await published_template(world)
    agreement = await executed_agreement(world, await parties(world), settings)

    text = "\n".join(b.text or " | ".join(" / ".join(r) for r in b.rows) for b in document_blocks(
        agreement.document_docx))
    assert f"version {version.number} of the Processor's AI" in text
    assert "Prompts and inputs" in text and "Mistral AI SAS: zero data retention" in text
    assert agreement.bound_to["ai_commitments"] == {"version": 1, "sha256": version.sha256,
                                                    "effective_date": dt.date.today().isoformat()}
    bundle = (await db.execute(select(AgreementDocument).where(AgreementDocument.kind == DocumentKind.BUNDLE)
                               .options(undefer(AgreementDocument.data)))).scalar_one()
    report = verify_bundle(bundle.data)
    assert report.ok and report.record["ai_commitments"]["sha256"] == version.sha256
