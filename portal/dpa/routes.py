"""The vendor's DPA template pages: the versions with the upload form, the field catalog, one version with its
preview, download, publish and discard, and the redline between two versions.

Vendor staff only: members of a client organisation get 404, as for every vendor page, and vendor staff without
``MANAGE_TEMPLATES`` read everything but get 403 on each form. A refused upload is answered with the versions page
and the reason beside the file field; the 4xx response rolls the transaction back, so nothing of it is stored.

Uploads are size-limited before they are read whole: a declared Content-Length over the limit is refused at once,
and the body is counted as it arrives, so a request that hides its size (chunked) is stopped at the same limit.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.roles import Permission
from portal.dpa import fields, profile, templates
from portal.dpa.models import TemplateStatus, TemplateVersion
from portal.dpa.render import RenderError
from portal.dpa.upload import UploadLimits
from portal.errors import InvalidInput, PortalError
from portal.signing import campaign
from portal.subprocessors.registry_routes import vendor_staff
from portal.web import capped_request, db, declared_length, form_text, read_form, redirect, render, settings_of

TEMPLATES = "/templates"
VERSION = TEMPLATES + "/versions/{version_id}"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MiB = 1 << 20
# Room for what surrounds the file in a multipart body: boundaries, part headers and the CSRF token.
ENVELOPE_BYTES = 64 * 1024


class UploadTooLarge(PortalError):
    status = 413
    code = "upload_too_large"
    default_message = "The upload is too large."


def _limit_text(limits: UploadLimits) -> str:
    return f"{limits.max_bytes / MiB:g} MiB"


def _too_large(limits: UploadLimits) -> UploadTooLarge:
    message = (f"The file is larger than the {_limit_text(limits)} a template may have; nothing was stored. "
               "Remove large images or embedded files from the document and upload it again.")
    return UploadTooLarge(message, fields={"file": message})


def _page_errors(error: PortalError | None) -> dict[str, Any]:
    return {"error": error.message if error else None, "field_errors": error.fields if error else {}}


# ---------------------------------------------------------------- the versions page and the upload

async def index(request: Request, *, error: PortalError | None = None, status: int = 200) -> Response:
    actor = vendor_staff(request)
    found = await templates.versions(db(request), actor=actor)
    return render(request, "dpa/index.html", {
        "drafts": [v for v in found if v.status is TemplateStatus.DRAFT],
        "published": [v for v in found if v.status is TemplateStatus.PUBLISHED],
        "versions": found, "limit": _limit_text(UploadLimits()),
        "can_manage": actor.can(Permission.MANAGE_TEMPLATES), **_page_errors(error),
    }, status=status)


async def _uploaded_file(form: FormData, limits: UploadLimits) -> tuple[str, bytes]:
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("Choose a .docx file to upload.", fields={"file": "Choose a .docx file."})
    data = await upload.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise _too_large(limits)
    return upload.filename, data


async def upload(request: Request) -> Response:
    # Who may upload is known from the session alone: check it before spending anything on the body.
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    limits = UploadLimits()
    cap = limits.max_bytes + ENVELOPE_BYTES
    capped = capped_request(request, cap, lambda: _too_large(limits))
    try:
        if declared_length(request) > cap:
            raise _too_large(limits)
        filename, data = await _uploaded_file(await read_form(capped), limits)
        version = await templates.upload(db(request), actor=actor, filename=filename, data=data)
    except UploadTooLarge as exc:
        return await index(request, error=exc, status=413)
    except (InvalidInput, RenderError) as exc:
        # A render failure names no field; its reason belongs beside the file all the same.
        refused = InvalidInput(exc.message, fields=exc.fields or {"file": exc.message})
        return await index(request, error=refused, status=400)
    finally:
        await capped.close()  # the spooled file, also when the CSRF check refused the form
    return redirect(request, f"{TEMPLATES}/versions/{version.id}",
                    flash=f"{version.filename} is checked and stored as a draft. Review the preview, then publish.")


async def upload_default(request: Request) -> Response:
    await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    version = await templates.upload_default(db(request), actor=actor)
    return redirect(request, f"{TEMPLATES}/versions/{version.id}",
                    flash="The default DPA is stored as a draft. Review the preview, then publish.")


# ---------------------------------------------------------------- the field catalog

async def field_catalog(request: Request) -> Response:
    vendor_staff(request)
    return render(request, "dpa/fields.html", {"groups": fields.fields_by_group(), "loops": fields.LOOPS})


# ---------------------------------------------------------------- the vendor's own details

async def profile_page(request: Request, *, values: dict[str, str] | None = None,
                       error: PortalError | None = None, status: int = 200) -> Response:
    actor = vendor_staff(request)
    return render(request, "dpa/profile.html", {
        "fields": profile.PROFILE_FIELDS, "values": values or await profile.profile_values(db(request)),
        "can_manage": actor.can(Permission.MANAGE_TEMPLATES), **_page_errors(error),
    }, status=status)


async def save_profile(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    values = {f.name: form_text(form, f.name) for f in profile.PROFILE_FIELDS}
    try:
        await profile.save_profile(db(request), actor=actor, raw=values)
    except InvalidInput as exc:
        return await profile_page(request, values=values, error=exc, status=400)
    return redirect(request, TEMPLATES + "/profile", flash="The vendor's details are saved; agreements rendered from "
                                                           "now on use them.")


# ---------------------------------------------------------------- one version

async def _version(request: Request) -> TemplateVersion:
    return await templates.version_of(db(request), actor=vendor_staff(request),
                                      version_id=request.path_params["version_id"])


async def version_page(request: Request, *, changelog: str = "", error: PortalError | None = None,
                       status: int = 200) -> Response:
    actor = vendor_staff(request)
    version = await _version(request)
    preview_error = ""
    try:
        paragraphs = await templates.preview(version)
    except RenderError as exc:
        paragraphs, preview_error = [], exc.message
    return render(request, "dpa/version.html", {
        "version": version, "paragraphs": paragraphs, "preview_error": preview_error, "changelog": changelog,
        "can_manage": actor.can(Permission.MANAGE_TEMPLATES), **_page_errors(error),
    }, status=status)


def _download_name(filename: str) -> str:
    """The stored name reduced to characters that are safe in a header and on every file system."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.removesuffix(".docx")).strip("._") or "template"
    return stem[:120] + ".docx"


async def download(request: Request) -> Response:
    version = await _version(request)
    return Response(version.docx, media_type=DOCX_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{_download_name(version.filename)}"',
        "Cache-Control": "no-store",
    })


async def publish(request: Request) -> Response:
    form = await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    changelog = form_text(form, "changelog")
    try:
        rollout = await campaign.publish_and_roll_out(db(request), actor=actor, changelog=changelog,
                                                      version_id=request.path_params["version_id"],
                                                      settings=settings_of(request))
    except InvalidInput as exc:
        return await version_page(request, changelog=changelog, error=exc, status=400)
    version = rollout.version
    asked = rollout.ready_to_sign + rollout.details_needed
    return redirect(request, f"{TEMPLATES}/versions/{version.id}",
                    flash=f"Published as version {version.number}. " + (
                        f"{asked} client(s) are asked to sign it ({rollout.ready_to_sign} ready to sign, "
                        f"{rollout.details_needed} to fill in their details first): follow them on the agreements "
                        "board." if asked else "No client has an agreement yet."))


async def discard(request: Request) -> Response:
    await read_form(request)
    actor = vendor_staff(request, Permission.MANAGE_TEMPLATES)
    try:
        await templates.discard(db(request), actor=actor, version_id=request.path_params["version_id"])
    except InvalidInput as exc:
        return await version_page(request, error=exc, status=400)
    return redirect(request, TEMPLATES, flash="The draft is discarded.")


# ---------------------------------------------------------------- the redline

async def diff(request: Request) -> Response:
    actor = vendor_staff(request)
    old_id, new_id = request.query_params.get("from", ""), request.query_params.get("to", "")
    if not old_id or not new_id or old_id == new_id:
        return await index(request, error=InvalidInput("Choose two different versions to compare."), status=400)
    old = await templates.version_of(db(request), actor=actor, version_id=old_id)
    new = await templates.version_of(db(request), actor=actor, version_id=new_id)
    lines = templates.redline(old, new)
    return render(request, "dpa/diff.html", {
        "old": old, "new": new, "lines": lines, "changed": sum(1 for line in lines if line.op != "same"),
    })


routes: list[BaseRoute] = [
    Route(TEMPLATES, index, methods=["GET"]),
    Route(TEMPLATES, upload, methods=["POST"]),
    Route(TEMPLATES + "/default", upload_default, methods=["POST"]),
    Route(TEMPLATES + "/fields", field_catalog, methods=["GET"]),
    Route(TEMPLATES + "/profile", profile_page, methods=["GET"]),
    Route(TEMPLATES + "/profile", save_profile, methods=["POST"]),
    Route(TEMPLATES + "/diff", diff, methods=["GET"]),
    Route(VERSION, version_page, methods=["GET"]),
    Route(VERSION + "/download", download, methods=["GET"]),
    Route(VERSION + "/publish", publish, methods=["POST"]),
    Route(VERSION + "/discard", discard, methods=["POST"]),
]
