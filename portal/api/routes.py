"""JSON API routes under /api/v1."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
