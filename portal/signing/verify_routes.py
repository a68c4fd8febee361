"""The public ``/verify`` page: upload a file, learn whether it is an executed agreement or evidence the portal
issued, and the vendor's seal certificate to check bundles against offline.

Uploads are size-limited before they are read whole; nothing is stored. Logged-in parties see more (see
``verification``); a page anyone can open holds no other tenant's data.
"""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.actors import Actor
from portal.errors import InvalidInput, PortalError
from portal.signing.seal import certificate_fingerprint, certificate_pem, seal_key
from portal.signing.verification import verify_upload
from portal.web import capped_request, client_ip, current_member, db, declared_length, read_form, render, settings_of

MiB = 1 << 20
MAX_UPLOAD = 50 * MiB


class UploadTooLarge(PortalError):
    status = 413
    code = "upload_too_large"
    default_message = f"The file is larger than {MAX_UPLOAD // MiB} MiB; no document of the portal is that large."


def _viewer(request: Request) -> Actor | None:
    member = current_member(request)
    return Actor.for_member(member, ip=client_ip(request)) if member is not None else None


async def page(request: Request, *, verdict: object = None, error: PortalError | None = None,
               status: int = 200) -> Response:
    key = seal_key(settings_of(request))
    return render(request, "signing/verify.html", {
        "verdict": verdict, "fingerprint": certificate_fingerprint(key),
        "error": error.message if error else None, "limit": MAX_UPLOAD // MiB,
    }, status=status)


async def check(request: Request) -> Response:
    capped = capped_request(request, MAX_UPLOAD + 64 * 1024, UploadTooLarge)
    try:
        if declared_length(request) > MAX_UPLOAD + 64 * 1024:
            raise UploadTooLarge()
        form = await read_form(capped)
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput("Choose the file to check.")
        data = await upload.read(MAX_UPLOAD + 1)
        if len(data) > MAX_UPLOAD:
            raise UploadTooLarge()
    except (UploadTooLarge, InvalidInput) as exc:
        return await page(request, error=exc, status=exc.status)
    finally:
        await capped.close()
    verdict = await verify_upload(db(request), data=data, actor=_viewer(request))
    return await page(request, verdict=verdict)


async def certificate(request: Request) -> Response:
    """The vendor's seal certificate (PEM), to compare with the one inside an evidence bundle."""
    return Response(certificate_pem(seal_key(settings_of(request))), media_type="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="seal-certificate.pem"'})


routes: list[BaseRoute] = [
    Route("/verify", page, methods=["GET"]),
    Route("/verify", check, methods=["POST"]),
    Route("/verify/seal-certificate.pem", certificate, methods=["GET"]),
]
