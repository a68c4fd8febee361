"""Who is acting: a logged-in person, an API token, the command line or the portal itself.

Services receive an ``Actor`` so that permission checks and audit events see the same identity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from portal.errors import Forbidden, NotFound

if TYPE_CHECKING:
    import uuid

    from portal.accounts.models import Membership, Organisation, User
    from portal.accounts.roles import Permission


@dataclass(frozen=True)
class Actor:
    label: str
    org: Organisation | None = None
    user: User | None = None
    membership: Membership | None = None
    ip: str = ""
    scopes: frozenset[str] = field(default_factory=frozenset)
    # For an API token: the person who created it, whose own choices (notice topics) the token may make.
    on_behalf_of: uuid.UUID | None = None
    # Command-line and system actors run with the operator's full authority.
    trusted: bool = False
    # For an API token: the permissions an endpoint lets its scope stand for (a token has no membership).
    granted: frozenset[Permission] = field(default_factory=frozenset)

    @property
    def user_id(self) -> uuid.UUID | None:
        return self.user.id if self.user else None

    def can(self, permission: Permission) -> bool:
        if self.trusted:
            return True
        if self.membership is None:
            return permission in self.granted
        return self.membership.can(permission)

    def require(self, permission: Permission) -> None:
        """Raise 403 unless the actor holds ``permission``."""
        if not self.can(permission):
            raise Forbidden()

    def require_vendor(self, permission: Permission) -> None:
        """Vendor staff holding ``permission`` (403 without it); anyone outside the vendor gets 404, since vendor
        pages and actions do not exist for clients. Trusted actors (command line, system) pass."""
        if self.trusted:
            return
        if self.org is None or not self.org.is_vendor:
            raise NotFound()
        self.require(permission)

    @classmethod
    def for_member(cls, membership: Membership, *, ip: str = "") -> Actor:
        return cls(label=f"user:{membership.user.email}", org=membership.org, user=membership.user,
                   membership=membership, ip=ip)

    @classmethod
    def system(cls, label: str = "system", org: Organisation | None = None) -> Actor:
        return cls(label=label, org=org, trusted=True)
