"""Audit log pages and exports."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
