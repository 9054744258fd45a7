"""The operator API (DESIGN §5): HTTP + JSON routes over the state store and the broker.

Modules: ``http`` (API Gateway v2 events and proxy responses), ``routes`` (the route table
machinery), ``app`` (the routes and the one place errors become responses), one module per
resource (``chargers``, ``id_tags``, ``transactions``, ``calls``), ``views`` (records as the
API shows them) and ``errors``. Nothing here needs Lambda: ``lambdas.operator_api`` and
``local_stack.api_server`` both feed it events.
"""

from .app import ROUTES, handle_event
from .context import ApiContext

__all__ = ["ROUTES", "ApiContext", "handle_event"]
