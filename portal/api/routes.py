"""JSON API routes under /api/v1, generated from the endpoint registry."""

from starlette.routing import BaseRoute

from portal.ai_commitments import api as ai_commitments_api  # noqa: F401
from portal.api import endpoints, openapi  # noqa: F401 - importing registers the endpoints
from portal.api.registry import api
from portal.breaches import api as breaches_api  # noqa: F401
from portal.notifications import api as notices_api  # noqa: F401
from portal.notifications import webhook_api  # noqa: F401
from portal.signing import api as agreements_api  # noqa: F401
from portal.subprocessors import api as subprocessors_api  # noqa: F401

routes: list[BaseRoute] = list(api.routes())
