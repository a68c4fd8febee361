"""The vendor's registry pages: the working copy with its drafts, the entry form (add, edit, replace), removing an
entry and discarding a draft, and the publish page (the objections board is in ``objection_routes``).

Vendor staff only: members of a client organisation get 404, as for every vendor page, and vendor staff without
``MANAGE_SUBPROCESSORS`` read everything but get 403 on each form. Refused input is shown again as typed, each
message beside its field; the 400 response rolls the transaction back, so nothing of it is saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.errors import InvalidInput
from portal.subprocessors import publishing, registry
from portal.subprocessors.client_view import places
from portal.subprocessors.entries import FIELDS, Entry
from portal.subprocessors.geography import TRANSFER_MECHANISMS
from portal.subprocessors.models import KIND_LABELS, DraftKind
from portal.web import actor_of, db, form_text, read_form, redirect, render, settings_of

REGISTRY = "/registry"
DraftAction = Callable[..., Awaitable[object]]
CHECKED = frozenset({"on", "true", "1", "yes"})


def vendor_staff(request: Request, permission: Permission = Permission.VIEW_CLIENTS) -> Actor:
    """The vendor staff member acting: anyone else gets 404 (these pages do not exist for clients), and staff
    without ``permission`` 403."""
    actor = actor_of(request)
    actor.require_vendor(permission)
    return actor


def page_errors(error: InvalidInput | None) -> dict[str, Any]:
    return {"error": error.message if error else None, "field_errors": error.fields if error else {}}


# ---------------------------------------------------------------- the working copy

@dataclass(frozen=True)
class Row:
    """One entry of the working copy as the registry page shows it."""

    item: registry.WorkingEntry
    badge: str  # what its draft does: new, changed, replacement, to be removed, replaced by X ('' for none)
    note: str  # the badge's detail (what a replacement replaces)
    parent: str
    mechanism: str
    places: str

    @property
    def entry(self) -> Entry:
        return self.item.entry

    @property
    def editable(self) -> bool:
        return not self.item.removed

    @property
    def published_and_kept(self) -> bool:
        """Replace and Remove apply to a published entry that no draft removes yet."""
        return self.item.published is not None and not self.item.removed

    @property
    def has_draft(self) -> bool:
        return self.item.draft is not None or self.item.replaced_by is not None


def _badge(item: registry.WorkingEntry, names: dict[str, str]) -> tuple[str, str]:
    if item.replaced_by is not None:
        return f"replaced by {item.replaced_by.data.get('name', '')}", ""
    if item.draft is None:
        return "", ""
    if item.draft.kind is DraftKind.REPLACE:
        return "replacement", f"replaces {names.get(str(item.draft.replaces_entry_id), 'a removed entry')}"
    return {DraftKind.ADD: "new", DraftKind.MODIFY: "changed", DraftKind.REMOVE: "to be removed"}[item.draft.kind], ""


def _rows(copy: registry.WorkingCopy) -> list[Row]:
    names = {item.entry["id"]: item.entry.get("name", "") for item in copy.entries}
    rows = []
    for item in copy.entries:
        entry = item.entry
        badge, note = _badge(item, names)
        parent = entry.get("parent_id") or ""
        rows.append(Row(item, badge, note, names.get(parent, "") if parent else "",
                        TRANSFER_MECHANISMS.get(entry.get("transfer_mechanism") or "", ""),
                        places(list(entry.get("locations") or []))))
    return rows


async def index(request: Request, *, error: InvalidInput | None = None, status: int = 200) -> Response:
    actor = vendor_staff(request)
    session = db(request)
    copy = await registry.working_copy(session)
    return render(request, "registry/index.html", {
        "rows": _rows(copy), "drafts": len(copy.drafts), "versions": list(reversed(await registry.versions(session))),
        "can_manage": actor.can(Permission.MANAGE_SUBPROCESSORS), **page_errors(error),
    }, status=status)


# ---------------------------------------------------------------- the entry form: add, edit, replace

def _values_of(entry: Entry | None) -> dict[str, Any]:
    """The form's values for a stored entry (lists as the comma-separated text the form takes)."""
    values: dict[str, Any] = {}
    for spec in FIELDS:
        value = (entry or {}).get(spec.name)
        values[spec.name] = ", ".join(value) if isinstance(value, list) else (value or "")
    values["ai_model_provider"] = bool((entry or {}).get("ai_model_provider"))
    return values


def _typed(form: FormData) -> dict[str, Any]:
    """The form as submitted: what the service reads and what the page shows again when it is refused."""
    values: dict[str, Any] = {spec.name: form_text(form, spec.name) for spec in FIELDS}
    values["ai_model_provider"] = values["ai_model_provider"].strip().lower() in CHECKED
    return values


@dataclass(frozen=True)
class FormMode:
    heading: str
    action: str
    submit: str
    item: registry.WorkingEntry | None = None  # the entry edited, or the one replaced


async def _form_page(request: Request, mode: FormMode, *, values: dict[str, Any],
                     error: InvalidInput | None = None, status: int = 200) -> Response:
    copy = await registry.working_copy(db(request))
    own = mode.item.entry["id"] if mode.item is not None else ""
    parents = [(item.entry["id"], item.entry["name"]) for item in copy.entries
               if not item.removed and item.entry["id"] != own]
    return render(request, "registry/entry.html", {
        "mode": mode, "values": values, "fields": FIELDS, "mechanisms": TRANSFER_MECHANISMS, "parents": parents,
        **page_errors(error),
    }, status=status)


def _new_mode() -> FormMode:
    return FormMode("Add a sub-processor", f"{REGISTRY}/new", "Save as a draft")


async def _item(request: Request) -> registry.WorkingEntry:
    return (await registry.working_copy(db(request))).find(request.path_params["entry_id"])


def _edit_mode(item: registry.WorkingEntry) -> FormMode:
    if item.removed:
        raise InvalidInput("This entry is drafted for removal; discard that draft first.")
    return FormMode(f"Edit {item.entry['name']}", f"{REGISTRY}/entries/{item.entry['id']}/edit", "Save the draft",
                    item)


def _replace_mode(item: registry.WorkingEntry) -> FormMode:
    if item.removed:
        raise InvalidInput("This entry is already drafted for removal or replacement; discard that draft first.")
    if item.published is None:
        raise InvalidInput("Only a published entry can be replaced; edit the drafted one instead.")
    return FormMode(f"Replace {item.entry['name']}", f"{REGISTRY}/entries/{item.entry['id']}/replace",
                    "Save the replacement as a draft", item)


async def new_form(request: Request) -> Response:
    vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    return await _form_page(request, _new_mode(), values=_values_of(None))


async def edit_form(request: Request) -> Response:
    vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    item = await _item(request)
    return await _form_page(request, _edit_mode(item), values=_values_of(item.entry))


async def replace_form(request: Request) -> Response:
    vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    item = await _item(request)
    return await _form_page(request, _replace_mode(item), values=_values_of({"parent_id": item.entry.get("parent_id")}))


async def _save(request: Request, mode: FormMode, form: FormData, actor: Actor, *, entry_id: str | None = None,
                replaces: str | None = None) -> Response:
    values = _typed(form)
    raw = {**values, "ai_model_provider": "on" if values["ai_model_provider"] else ""}
    try:
        draft = await publishing.draft_entry(db(request), actor=actor, raw=raw, entry_id=entry_id,
                                              replaces=replaces)
    except InvalidInput as exc:
        return await _form_page(request, mode, values=values, error=exc, status=400)
    name = draft.data.get("name", "")
    if inspect(draft).deleted:  # edited back to what is published
        return redirect(request, REGISTRY, flash=f"{name} is as published again: its draft is gone.")
    return redirect(request, REGISTRY, flash=f"The draft of {name} is saved. It reaches clients when you publish.")


async def create(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    return await _save(request, _new_mode(), form, actor)


async def edit(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    item = await _item(request)
    return await _save(request, _edit_mode(item), form, actor, entry_id=item.entry["id"])


async def replace(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    item = await _item(request)
    return await _save(request, _replace_mode(item), form, actor, replaces=item.entry["id"])


async def _draft_action(request: Request, act: DraftAction, done: str) -> Response:
    """A one-button form on an entry: ``act`` drafts or discards; refused, the registry shows why (400)."""
    await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    item = await _item(request)
    try:
        await act(db(request), actor=actor, entry_id=item.entry["id"])
    except InvalidInput as exc:
        return await index(request, error=exc, status=400)
    return redirect(request, REGISTRY, flash=done.format(name=item.entry["name"]))


async def remove(request: Request) -> Response:
    return await _draft_action(request, publishing.draft_removal, "{name} is drafted for removal.")


async def discard(request: Request) -> Response:
    return await _draft_action(request, publishing.discard_draft, "The draft of {name} is discarded.")


# ---------------------------------------------------------------- publishing

def _fix_link(key: str) -> str:
    """Where to fix a problem of the plan: the entry it names, else the registry."""
    return f"{REGISTRY}/entries/{key.removeprefix('entry:')}/edit" if key.startswith("entry:") else REGISTRY


async def publish_page(request: Request, *, values: dict[str, str] | None = None,
                       error: InvalidInput | None = None, status: int = 200) -> Response:
    actor = vendor_staff(request)
    default_days = settings_of(request).subprocessor_notice_days
    planned = await publishing.plan(db(request), default_notice_days=default_days)
    return render(request, "registry/publish.html", {
        "plan": planned, "default_days": default_days, "kinds": KIND_LABELS,
        "problems": [(message, _fix_link(key)) for key, message in planned.problems.items()],
        "values": values or {"effective_date": planned.earliest_effective.isoformat(), "summary": ""},
        "can_manage": actor.can(Permission.MANAGE_SUBPROCESSORS), **page_errors(error),
    }, status=status)


async def publish(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_SUBPROCESSORS)
    settings = settings_of(request)
    values = {"effective_date": form_text(form, "effective_date"), "summary": form_text(form, "summary")}
    try:
        version = await publishing.publish(db(request), actor=actor, effective_date=values["effective_date"],
                                           summary=values["summary"],
                                           default_notice_days=settings.subprocessor_notice_days,
                                           base_url=settings.base_url)
    except InvalidInput as exc:
        return await publish_page(request, values=values, error=exc, status=400)
    return redirect(request, REGISTRY, flash=f"Version {version.number} is published, effective "
                                             f"{version.effective_date.isoformat()}; its notice is on its way.")


ENTRY = REGISTRY + "/entries/{entry_id}"

routes: list[BaseRoute] = [
    Route(REGISTRY, index, methods=["GET"]),
    Route(REGISTRY + "/new", new_form, methods=["GET"]),
    Route(REGISTRY + "/new", create, methods=["POST"]),
    Route(ENTRY + "/edit", edit_form, methods=["GET"]),
    Route(ENTRY + "/edit", edit, methods=["POST"]),
    Route(ENTRY + "/replace", replace_form, methods=["GET"]),
    Route(ENTRY + "/replace", replace, methods=["POST"]),
    Route(ENTRY + "/remove", remove, methods=["POST"]),
    Route(ENTRY + "/discard", discard, methods=["POST"]),
    Route(REGISTRY + "/publish", publish_page, methods=["GET"]),
    Route(REGISTRY + "/publish", publish, methods=["POST"]),
]
