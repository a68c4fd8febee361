"""Organisations, people and memberships.

Invariants:
- there is one vendor organisation; vendor staff with ``manage_clients`` create client organisations;
- an organisation always keeps at least one person who can manage it (a vendor owner, a client admin);
- every change writes an audit event in the same transaction.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from portal import audit
from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.accounts.roles import CONTACT_ROLES, OrgKind, Permission, Role, parse_roles
from portal.actors import Actor
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.security import hash_password, password_problem
from portal.tenancy import can_see_org, get_scoped, scoped

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(raw: str) -> str:
    """Lower-cased, trimmed address; raises InvalidInput when it is not an email address."""
    email = raw.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput("Enter a valid email address.", fields={"email": "Not an email address."})
    return email


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[1]


def _slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:60] or "org"


async def _unique_slug(session: AsyncSession, name: str) -> str:
    base = _slugify(name)
    taken = set((await session.execute(
        select(Organisation.slug).where(Organisation.slug.like(f"{base}%"))
    )).scalars())
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


# ---------------------------------------------------------------- organisations

async def vendor_org(session: AsyncSession) -> Organisation | None:
    return (await session.execute(
        select(Organisation).where(Organisation.kind == OrgKind.VENDOR)
    )).scalar_one_or_none()


async def create_vendor_org(session: AsyncSession, *, actor: Actor, name: str) -> Organisation:
    """Create the one vendor organisation (the command line does this once)."""
    if await vendor_org(session) is not None:
        raise Conflict("The vendor organisation already exists.")
    org = Organisation(id=uuid.uuid4(), kind=OrgKind.VENDOR, name=_org_name(name),
                       slug=await _unique_slug(session, name))
    session.add(org)
    await session.flush()
    await audit.record(session, actor=actor, tag="organisation:created", subject=org, org_id=org.id,
                       data={"name": org.name, "kind": org.kind})
    return org


def _org_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise InvalidInput("Organisation name is required.", fields={"name": "Required."})
    if len(name) > 200:
        raise InvalidInput("Organisation name is too long (at most 200 characters).", fields={"name": "Too long."})
    return name


async def create_client_org(session: AsyncSession, *, actor: Actor, name: str) -> Organisation:
    """Vendor staff with ``manage_clients`` create a client organisation; names are unique, ignoring case."""
    if not (actor.trusted or (actor.org is not None and actor.org.is_vendor)):
        raise Forbidden()
    actor.require(Permission.MANAGE_CLIENTS)
    name = _org_name(name)
    existing = (await session.execute(
        select(Organisation.id).where(func.lower(Organisation.name) == name.lower())
    )).first()
    if existing is not None:
        raise InvalidInput(f"An organisation called {name!r} already exists.", fields={"name": "Already exists."})
    org = Organisation(id=uuid.uuid4(), kind=OrgKind.CLIENT, name=name, slug=await _unique_slug(session, name))
    session.add(org)
    await session.flush()
    await audit.record(session, actor=actor, tag="organisation:created", subject=org, org_id=org.id,
                       data={"name": org.name, "kind": org.kind})
    return org


async def all_clients(session: AsyncSession) -> list[Organisation]:
    """Every client organisation by name (for fan-outs and lists whose caller checked who may see them)."""
    return list((await session.execute(select(Organisation).where(Organisation.kind == OrgKind.CLIENT)
                                       .order_by(func.lower(Organisation.name)))).scalars())


async def client_orgs(session: AsyncSession, *, actor: Actor) -> list[tuple[Organisation, int]]:
    """Every client organisation with its number of members (vendor staff only)."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    counts = (
        select(Membership.org_id, func.count(Membership.id).label("members"))
        .group_by(Membership.org_id).subquery()
    )
    rows = (await session.execute(
        select(Organisation, func.coalesce(counts.c.members, 0))
        .outerjoin(counts, counts.c.org_id == Organisation.id)  # tenancy: member counts joined to their own org
        .where(Organisation.kind == OrgKind.CLIENT).order_by(func.lower(Organisation.name))
    )).all()
    return [(org, int(members)) for org, members in rows]


async def visible_org(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Organisation:
    """The organisation ``org_id`` if ``actor`` may see it (vendor staff: all; others: their own), else 404."""
    try:
        key = org_id if isinstance(org_id, uuid.UUID) else uuid.UUID(str(org_id))
    except ValueError:
        raise NotFound() from None
    org = await session.get(Organisation, key)
    if org is None or actor.org is None or not can_see_org(actor.org, org):
        raise NotFound()
    return org


# ---------------------------------------------------------------- people

async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return (await session.execute(select(User).where(User.email == email.strip().lower()))).scalar_one_or_none()


def checked_password(password: str, confirm: str | None, *, email: str, name: str) -> str:
    """``password`` if it is strong enough and confirmed, else InvalidInput saying why."""
    if confirm is not None and password != confirm:
        raise InvalidInput("The two passwords do not match.", fields={"password_confirm": "Does not match."})
    problem = password_problem(password, email=email, name=name)
    if problem:
        raise InvalidInput(f"Choose a stronger password. {problem}", fields={"password": problem})
    return password


def checked_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise InvalidInput("Your name is required.", fields={"name": "Required."})
    if len(name) > 200:
        raise InvalidInput("The name is too long (at most 200 characters).", fields={"name": "Too long."})
    return name


async def create_user(session: AsyncSession, *, email: str, name: str, password: str | None) -> User:
    email = normalise_email(email)
    if await user_by_email(session, email) is not None:
        raise InvalidInput("An account with this email address already exists.", fields={"email": "Taken."})
    user = User(id=uuid.uuid4(), email=email, name=checked_name(name),
                password_hash=hash_password(password) if password else None)
    session.add(user)
    await session.flush()
    return user


async def add_membership(session: AsyncSession, *, actor: Actor, org: Organisation, user: User,
                         roles: Iterable[Role | str]) -> Membership:
    """Make ``user`` a member of ``org`` (roles are checked against the organisation's kind)."""
    try:
        role_set = parse_roles([str(r) for r in roles], org.kind)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"roles": str(exc)}) from None
    existing = await membership_of(session, org=org, user_id=user.id)
    if existing is not None:
        raise InvalidInput(f"{user.email} is already a member of {org.name}.", fields={"email": "Already a member."})
    membership = Membership(id=uuid.uuid4(), org_id=org.id, user_id=user.id,
                            role_rows=[MembershipRole(role=r) for r in sorted(role_set)])
    session.add(membership)
    await session.flush()
    await audit.record(session, actor=actor, tag="membership:created", subject=membership,
                       data={"email": user.email, "roles": sorted(role_set)})
    return membership


_MEMBER_LOADS = (joinedload(Membership.user), selectinload(Membership.role_rows), joinedload(Membership.org))


async def membership_of(session: AsyncSession, *, org: Organisation, user_id: uuid.UUID) -> Membership | None:
    """``user_id``'s membership of ``org`` with its user, roles and organisation loaded."""
    statement = scoped(select(Membership).where(Membership.user_id == user_id), Membership, org)
    return (await session.execute(statement.options(*_MEMBER_LOADS))).scalar_one_or_none()


async def memberships_of_user(session: AsyncSession, user: User) -> list[Membership]:
    """Every organisation ``user`` belongs to, the vendor first, then by name."""
    rows = (await session.execute(
        select(Membership).where(Membership.user_id == user.id).options(*_MEMBER_LOADS)
    )).scalars().all()
    return sorted(rows, key=lambda m: (not m.org.is_vendor, m.org.name.lower()))


async def members(session: AsyncSession, *, org: Organisation) -> list[Membership]:
    """The organisation's members with their users and roles, by name."""
    statement = scoped(select(Membership), Membership, org).options(*_MEMBER_LOADS)
    rows = (await session.execute(statement)).scalars().all()
    return sorted(rows, key=lambda m: m.user.name.lower())


def _manager_role(org: Organisation) -> Role:
    return Role.OWNER if org.is_vendor else Role.ADMIN


def require_manage_people(actor: Actor, org: Organisation) -> None:
    """Members of ``org`` need ``manage_members``; vendor staff need ``manage_clients`` for client orgs."""
    if actor.trusted:
        return
    if actor.org is not None and actor.org.id == org.id:
        actor.require(Permission.MANAGE_MEMBERS)
    elif actor.org is not None and actor.org.is_vendor and not org.is_vendor:
        actor.require(Permission.MANAGE_CLIENTS)
    else:
        raise NotFound()


async def _count_managers(session: AsyncSession, org: Organisation) -> int:
    statement = scoped(
        select(func.count()).select_from(Membership).join(MembershipRole)
        .where(MembershipRole.role == _manager_role(org)), Membership, org,
    )
    return int((await session.execute(statement)).scalar_one())


async def set_roles(session: AsyncSession, *, actor: Actor, org: Organisation, membership_id: str,
                    roles: Iterable[str]) -> Membership:
    """Replace a member's roles; the last owner (vendor) or admin (client) keeps that role."""
    require_manage_people(actor, org)
    membership = await _member_for_change(session, org, membership_id)
    try:
        new_roles = parse_roles(roles, org.kind)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"roles": str(exc)}) from None
    return await _replace_roles(session, actor=actor, org=org, membership=membership, new_roles=new_roles)


async def set_contact_roles(session: AsyncSession, *, actor: Actor, org: Organisation, membership_id: str,
                            roles: Iterable[str]) -> Membership:
    """Make a client member a privacy and/or security contact or neither, leaving their other roles alone.

    People who manage members may do it, and so may an API token of the organisation itself holding
    ``contacts:write``: contact roles route notices and grant no authority over people, tokens or settings, so a
    token cannot raise anyone's authority with it."""
    own_token = actor.membership is None and actor.org is not None and actor.org.id == org.id
    if own_token and "contacts:write" in actor.scopes:
        pass
    elif own_token:
        raise Forbidden()
    else:
        require_manage_people(actor, org)
    if org.is_vendor:
        raise NotFound()
    chosen: set[Role] = set()
    for value in roles:
        try:
            role = Role(value)
        except ValueError:
            role = None
        if role not in CONTACT_ROLES:
            message = f"{str(value)[:40]!r} is not a contact role; use privacy_contact or security_contact."
            raise InvalidInput(message, fields={"roles": message})
        chosen.add(role)
    membership = await _member_for_change(session, org, membership_id)
    new_roles = (set(membership.roles) - CONTACT_ROLES) | chosen or {Role.MEMBER}
    return await _replace_roles(session, actor=actor, org=org, membership=membership, new_roles=new_roles)


async def _member_for_change(session: AsyncSession, org: Organisation, membership_id: str) -> Membership:
    return await get_scoped(session, Membership, membership_id, org,
                            selectinload(Membership.role_rows), joinedload(Membership.user))


async def _replace_roles(session: AsyncSession, *, actor: Actor, org: Organisation, membership: Membership,
                         new_roles: set[Role]) -> Membership:
    manager = _manager_role(org)
    if manager in membership.roles and manager not in new_roles and await _count_managers(session, org) <= 1:
        raise InvalidInput(f"{org.name} needs at least one {manager.label.lower()}; give the role to someone "
                           "else first.")
    before = sorted(membership.roles)
    if before == sorted(new_roles):
        return membership
    membership.role_rows = [MembershipRole(role=r) for r in sorted(new_roles)]
    await session.flush()
    await audit.record(session, actor=actor, tag="membership:roles_changed", subject=membership,
                       data={"email": membership.user.email, "before": before, "after": sorted(new_roles)})
    return membership


async def remove_member(session: AsyncSession, *, actor: Actor, org: Organisation, membership_id: str) -> None:
    """Remove a member and end their sessions in this organisation; the last owner or admin stays."""
    from portal.accounts.sessions import end_sessions_of

    require_manage_people(actor, org)
    membership = await _member_for_change(session, org, membership_id)
    if _manager_role(org) in membership.roles and await _count_managers(session, org) <= 1:
        raise InvalidInput(f"{membership.user.email} is the last {_manager_role(org).label.lower()} of "
                           f"{org.name} and cannot be removed.")
    await audit.record(session, actor=actor, tag="membership:removed", subject=membership,
                       data={"email": membership.user.email, "roles": sorted(membership.roles)})
    await end_sessions_of(session, membership.user, org=org)
    await session.delete(membership)
    await session.flush()
