"""``create_app(settings)``: the Starlette application with its middleware and each domain's routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from portal import errors
from portal.accounts.routes import routes as account_routes
from portal.accounts.sessions import CurrentMemberMiddleware
from portal.accounts.sso.routes import routes as sso_routes
from portal.accounts.tokens.routes import routes as token_routes
from portal.agreements.routes import routes as agreement_routes
from portal.ai_commitments.client_routes import routes as ai_commitment_client_routes
from portal.ai_commitments.manage_routes import routes as ai_commitment_manage_routes
from portal.ai_commitments.public_routes import routes as ai_commitment_public_routes
from portal.api.routes import routes as api_routes
from portal.audit.routes import routes as audit_routes
from portal.breaches.client_routes import routes as breach_client_routes
from portal.breaches.export_routes import routes as breach_export_routes
from portal.breaches.routes import routes as breach_routes
from portal.db import make_engine, make_sessionmaker
from portal.dpa.render import close_render_workers
from portal.dpa.routes import routes as dpa_template_routes
from portal.notifications.mail import Mailer
from portal.notifications.public_routes import routes as public_notice_routes
from portal.notifications.routes import routes as notice_routes
from portal.notifications.webhook_routes import routes as webhook_routes
from portal.security import SecurityHeadersMiddleware
from portal.settings import Settings
from portal.signing.campaign_routes import routes as campaign_routes
from portal.signing.routes import routes as signing_routes
from portal.signing.verify_routes import routes as verify_routes
from portal.subprocessors.client_routes import routes as subprocessor_client_routes
from portal.subprocessors.objection_routes import routes as objection_routes
from portal.subprocessors.public_cache import PublicAnswerMiddleware, PublicAnswers
from portal.subprocessors.public_routes import routes as subprocessor_public_routes
from portal.subprocessors.registry_routes import routes as registry_routes
from portal.web import CSRFCookieMiddleware, DBSessionMiddleware, db

STATIC_DIR = Path(__file__).resolve().parent / "static"


async def healthz(request: Request) -> Response:
    """Liveness and database reachability, for load balancers and the container healthcheck."""
    await db(request).execute(text("SELECT 1"))
    return JSONResponse({"status": "ok"})


def all_routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *api_routes,
        *account_routes,
        *sso_routes,
        *token_routes,
        *audit_routes,
        *breach_routes,
        *breach_client_routes,
        *breach_export_routes,
        *notice_routes,
        *webhook_routes,
        *public_notice_routes,
        *agreement_routes,
        *signing_routes,
        *campaign_routes,
        *verify_routes,
        *registry_routes,
        *objection_routes,
        *dpa_template_routes,
        *subprocessor_client_routes,
        *subprocessor_public_routes,
        *ai_commitment_public_routes,
        *ai_commitment_client_routes,
        *ai_commitment_manage_routes,
    ]


def create_app(settings: Settings, *, mailer: Mailer | None = None, engine: AsyncEngine | None = None,
               run_worker: bool = False) -> Starlette:
    """The portal. Tests pass their own ``engine`` and ``mailer``; otherwise both come from ``settings``.
    ``run_worker`` (what ``portal serve`` passes on the embedded database) delivers notices in-process."""
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker = None
        if run_worker:
            from portal.notifications.worker import DeliveryWorker

            worker = asyncio.create_task(DeliveryWorker(app.state.sessionmaker, settings).run(stop),
                                         name="in-process delivery worker")
        try:
            yield
        finally:
            if worker is not None:
                stop.set()  # it finishes the sends in flight and gives back the rest
                await worker
            if owns_engine:
                await engine.dispose()
            close_render_workers()

    public_answers = PublicAnswers(engine)
    app = Starlette(
        routes=all_routes(),
        middleware=[
            Middleware(SecurityHeadersMiddleware, https=settings.https),
            # The public sub-processor list is read far more than it changes: cached answers skip what follows.
            Middleware(PublicAnswerMiddleware, answers=public_answers),
            Middleware(CSRFCookieMiddleware, secure=settings.https),
            # Only the single sign-on handshake uses this signed cookie (Authlib keeps state, nonce and the PKCE
            # verifier in it); logins themselves are server-side sessions.
            Middleware(SessionMiddleware, secret_key=settings.secret_key, session_cookie="portal_oauth",
                       max_age=900, same_site="lax", https_only=settings.https),
            Middleware(DBSessionMiddleware),
            Middleware(CurrentMemberMiddleware),
        ],
        exception_handlers={
            errors.PortalError: errors.portal_error_handler,
            HTTPException: errors.http_error_handler,
            Exception: errors.server_error_handler,
        },
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.public_answers = public_answers
    app.state.sessionmaker = make_sessionmaker(engine)
    app.state.mailer = mailer or Mailer.from_settings(settings)
    return app
