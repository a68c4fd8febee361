"""Roles and what they allow.

A person may hold several roles in one organisation. Vendor roles only exist in the vendor organisation and client
roles only in client organisations; ``roles_for_kind`` is the check.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class OrgKind(enum.StrEnum):
    VENDOR = "vendor"
    CLIENT = "client"


class Role(enum.StrEnum):
    # vendor organisation
    OWNER = "owner"
    LEGAL = "legal"
    SECURITY = "security"
    VIEWER = "viewer"
    # client organisations
    ADMIN = "admin"
    SIGNATORY = "signatory"
    PRIVACY_CONTACT = "privacy_contact"
    SECURITY_CONTACT = "security_contact"
    MEMBER = "member"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()


VENDOR_ROLES = (Role.OWNER, Role.LEGAL, Role.SECURITY, Role.VIEWER)
CLIENT_ROLES = (Role.ADMIN, Role.SIGNATORY, Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT, Role.MEMBER)
# The roles that route notices: they grant no authority over people, tokens or settings (only answering the
# notices they receive), so an API token may set them (``contacts:write``).
CONTACT_ROLES = frozenset({Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT})
# Vendor staff who change legal or security state must use a second factor when PORTAL_REQUIRE_VENDOR_MFA is on.
MFA_VENDOR_ROLES = frozenset({Role.OWNER, Role.LEGAL, Role.SECURITY})


def roles_for_kind(kind: OrgKind) -> tuple[Role, ...]:
    return VENDOR_ROLES if kind is OrgKind.VENDOR else CLIENT_ROLES


def parse_roles(values: Iterable[str], kind: OrgKind) -> set[Role]:
    """The roles named in ``values``; raises ValueError for an unknown role or one of the other kind."""
    allowed = roles_for_kind(kind)
    roles: set[Role] = set()
    for value in values:
        try:
            role = Role(value)
        except ValueError:
            raise ValueError(f"Unknown role {value!r}.") from None
        if role not in allowed:
            raise ValueError(f"The role {role.label!r} does not exist in a {kind.value} organisation.")
        roles.add(role)
    if not roles:
        raise ValueError("Choose at least one role.")
    return roles


class Permission(enum.StrEnum):
    MANAGE_CLIENTS = "manage_clients"  # create client organisations, invite their first admin
    MANAGE_MEMBERS = "manage_members"  # invite, change roles, remove people of one's own organisation
    MANAGE_SSO = "manage_sso"
    MANAGE_TOKENS = "manage_tokens"
    VIEW_AUDIT = "view_audit"
    VIEW_CLIENTS = "view_clients"
    MANAGE_AGREEMENTS = "manage_agreements"  # record and end clients' agreements
    MANAGE_SUBPROCESSORS = "manage_subprocessors"  # draft and publish the registry, resolve objections
    RESPOND_TO_CHANGES = "respond_to_changes"  # a client approves of or objects to sub-processor changes
    MANAGE_TEMPLATES = "manage_templates"  # upload, publish and discard DPA template versions
    PREPARE_AGREEMENTS = "prepare_agreements"  # a client fills in its agreement's details and chooses the signatory
    SIGN_AGREEMENTS = "sign_agreements"  # a client's signatory signs or declines the agreement on its behalf
    MANAGE_INCIDENTS = "manage_incidents"  # open incidents, notify affected clients, send updates, close them
    VIEW_INCIDENTS = "view_incidents"  # a client reads the breach notices it received and acknowledges them
    GIVE_INSTRUCTIONS = "give_instructions"  # a client's admin records documented instructions (AI training on/off)


_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    Role.LEGAL: frozenset({Permission.MANAGE_CLIENTS, Permission.VIEW_CLIENTS, Permission.VIEW_AUDIT,
                           Permission.MANAGE_SSO, Permission.MANAGE_AGREEMENTS, Permission.MANAGE_SUBPROCESSORS,
                           Permission.MANAGE_TEMPLATES}),
    Role.SECURITY: frozenset({Permission.VIEW_CLIENTS, Permission.VIEW_AUDIT, Permission.MANAGE_SSO,
                              Permission.MANAGE_INCIDENTS}),
    Role.VIEWER: frozenset({Permission.VIEW_CLIENTS, Permission.VIEW_AUDIT}),
    Role.ADMIN: frozenset({Permission.MANAGE_MEMBERS, Permission.MANAGE_SSO, Permission.MANAGE_TOKENS,
                           Permission.VIEW_AUDIT, Permission.RESPOND_TO_CHANGES, Permission.PREPARE_AGREEMENTS,
                           Permission.VIEW_INCIDENTS, Permission.GIVE_INSTRUCTIONS}),
    Role.SIGNATORY: frozenset({Permission.SIGN_AGREEMENTS}),
    Role.PRIVACY_CONTACT: frozenset({Permission.RESPOND_TO_CHANGES}),
    Role.SECURITY_CONTACT: frozenset({Permission.VIEW_INCIDENTS}),
    Role.MEMBER: frozenset(),
}


def permissions_of(roles: Iterable[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= _GRANTS[role]
    return frozenset(granted)
