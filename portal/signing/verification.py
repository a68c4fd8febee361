"""``/verify``: is this file one the portal issued for an executed agreement?

Invariants:
- the lookup is by the SHA-256 of the uploaded bytes alone; one changed byte finds nothing;
- anyone learns only whether the file is valid, what it is and when the agreement was executed; the parties (the
  client's members and the vendor's staff) also get the agreement's reference, parties and a link to its record;
- an uploaded evidence bundle that matches nothing is still checked offline (``verify_bundle``), so the uploader is
  told which part of it was changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import Organisation
from portal.actors import Actor
from portal.agreements.models import Agreement, AgreementDocument, AgreementStatus, DocumentKind
from portal.signing.bundle_check import BundleReport, verify_bundle


@dataclass(frozen=True)
class Verdict:
    sha256: str
    kind: DocumentKind | None = None  # None: no document of the portal has this hash
    executed_at: dt.datetime | None = None
    agreement: Agreement | None = None  # only for the agreement's parties
    org: Organisation | None = None  # likewise
    status: AgreementStatus | None = None
    bundle: BundleReport | None = None  # for an unknown zip: what the offline check found

    @property
    def valid(self) -> bool:
        return self.kind is not None


async def verify_upload(session: AsyncSession, *, data: bytes, actor: Actor | None) -> Verdict:
    """What the portal can say about ``data`` to ``actor`` (None: an anonymous visitor)."""
    digest = hashlib.sha256(data).hexdigest()
    # Deliberately across every tenant: the hash is the key, and what is shown is limited below.
    row = (await session.execute(
        select(AgreementDocument.kind, Agreement, Organisation)
        .join(Agreement, Agreement.id == AgreementDocument.agreement_id)
        .join(Organisation, Organisation.id == Agreement.org_id)  # tenancy: a join to its owner, not a filter
        .where(AgreementDocument.sha256 == digest).limit(1))).first()
    if row is None:
        looks_like_zip = data[:4] == b"PK\x03\x04"
        return Verdict(digest, bundle=verify_bundle(data) if looks_like_zip else None)
    kind, agreement, org = row
    party = actor is not None and actor.org is not None and (actor.org.is_vendor or actor.org.id == org.id)
    return Verdict(digest, kind=kind, executed_at=agreement.executed_at, status=agreement.status,
                   agreement=agreement if party else None, org=org if party else None)
