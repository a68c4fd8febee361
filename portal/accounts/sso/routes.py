"""Single sign-on pages: provider settings, the redirect to the IdP and its callback."""

from starlette.routing import BaseRoute

routes: list[BaseRoute] = []
