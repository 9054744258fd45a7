"""The moto server's cheaper expression handling and request dispatch (see ``local_stack.moto_server``).

Each function installs one change to moto's own code (``setattr_``: tests pass
``monkeypatch.setattr``); ``tests/local_stack/test_moto_server.py`` and
``test_moto_server_dispatch.py`` check that each answers what moto's own code answers.
"""

from __future__ import annotations

import copy
import io
import pickle
from collections.abc import Callable, Mapping
from typing import Any

from .moto_items import ITEM_TARGETS


def root_only_update_checks(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Check an update expression's clause counts and overlapping paths once, on the whole expression.

    moto's parser nests every clause and action list as an ``UpdateExpression`` node, and its two
    validators that look for a second ``SET`` or for overlapping paths run on each of those nodes,
    each walking the subtree below: quadratic in the number of actions (a 2.x TransactionEvent
    sets about 20 attributes, 20 ms of moto's CPU). Run on the root only, they see every action at
    once, so they accept and refuse the same expressions (``test_moto_server.py`` compares them);
    a refused expression may name its duplicates in a different order.
    """
    from moto.dynamodb.parsing import validators

    for cls, name in (
        (validators.ActionCountValidator, "verify_action_counts"),
        (validators.OverlappingPathsValidator, "check_for_overlapping_paths"),
    ):
        original = getattr(cls, name)

        def on_root(self: Any, node: Any, __original: Any = original) -> Any:
            return node if node.parent is not None else __original(self, node)

        setattr_(cls, name, on_root)


#: update expressions kept parsed (the adapter builds a few hundred distinct ones at most)
MAX_PARSED_EXPRESSIONS = 4096


def _node_copy(value: Any) -> Any:
    """A copy of an expression's syntax tree, made by pickling: about four times faster than
    ``copy.deepcopy`` on it (whose generic reconstruction walks each node's ``__dict__`` in
    Python), and the same tree, parent links included. Anything else is deep-copied as before."""
    from moto.dynamodb.parsing.ast_nodes import Node

    if isinstance(value, Node):
        return pickle.loads(pickle.dumps(value, pickle.HIGHEST_PROTOCOL))
    return copy.deepcopy(value)


def cached_update_expressions(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Parse each distinct update expression once, and copy syntax trees by pickling.

    moto parses an ``UpdateItem``'s expression twice (to check the names and values it uses, then
    to apply it) and its validator deep-copies the tree before it substitutes values into it,
    twice for a new item: together a third of moto's CPU on an ``UpdateItem`` (measured with
    py-spy under ``bench e2e``). Now ``UpdateExpressionParser.make`` answers a fresh copy of the
    tree it parsed the first time (so no caller sees another's changes), an expression that fails
    to parse fails every time as before (it is not kept), and the validator's copy is a pickle
    round trip. ``test_moto_server_dispatch.py`` compares outcomes and tables with moto's own.
    """
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    original = UpdateExpressionParser.make.__func__  # type: ignore[attr-defined]
    parsed: dict[str, bytes] = {}

    def make(cls: Any, expression_str: str) -> Any:
        tree = parsed.get(expression_str)
        if tree is None:
            node = original(cls, expression_str)
            if len(parsed) >= MAX_PARSED_EXPRESSIONS:
                parsed.clear()
            parsed[expression_str] = pickle.dumps(node, pickle.HIGHEST_PROTOCOL)
            return node
        return pickle.loads(tree)

    setattr_(UpdateExpressionParser, "make", classmethod(make))
    setattr_(validators, "deepcopy", _node_copy)


def cached_dispatch(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Work out once what moto's request dispatch recomputes on every request: the list of its
    service modules (a directory listing and a ``stat`` per entry, to match the request's host)
    and the handler's method names (``inspect.getmembers``); neither changes while it runs."""
    from moto import backends
    from moto.core import responses

    modules = tuple(backends.list_of_moto_modules())
    names: dict[type, list[str]] = {}
    original_names = responses.method_names_from_class

    def method_names_from_class(clazz: Any) -> list[str]:
        if clazz not in names:
            names[clazz] = original_names(clazz)
        return names[clazz]

    setattr_(backends, "list_of_moto_modules", lambda: iter(modules))
    setattr_(responses, "method_names_from_class", method_names_from_class)


#: the ``X-Amz-Target`` prefix of DynamoDB's own operations (not its streams')
DYNAMODB_TARGET = "DynamoDB_20120810."


#: answers an item request itself, or None for moto to (``local_stack.moto_items.answer``)
ItemAnswer = Callable[[str, Mapping[str, str], bytes], "tuple[int, dict[str, str], str] | None"]


def direct_dynamodb(app: Any, items: ItemAnswer | None = None) -> Any:
    """A WSGI app that hands DynamoDB requests straight to moto's DynamoDB handler, the rest to ``app``.

    moto's server finds the service of each request by its host and headers (the
    ``DomainDispatcherApplication``), then routes it through a Flask app per service to the same
    ``DynamoHandler.dispatch``; those layers took about a tenth of moto's CPU under ``bench e2e``
    (py-spy; 9 % of a Heartbeat's UpdateItem measured over HTTP).
    Here a request whose ``X-Amz-Target`` names a DynamoDB operation is built as moto's Flask
    app builds it (its request class, normalized, recorded) and given to that handler with
    the same arguments; its answer is sent as the Flask app sends it.

    With ``items``, a GetItem or UpdateItem (``ITEM_TARGETS``) is offered to it first (a POST to ``/`` with its
    length given, as botocore sends them), and what it does not answer goes on to moto.
    """
    from botocore.exceptions import ClientError
    from moto.core.request import normalize_request
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_api import recorder
    from moto.moto_server.werkzeug_app import BackendRequest
    from werkzeug.http import HTTP_STATUS_CODES
    from werkzeug.wrappers import Response

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(DYNAMODB_TARGET):
            return app(environ, start_response)
        if items is not None and target in ITEM_TARGETS:
            answered = _item_answer(items, target, environ)
            if answered is not None:
                status, headers, text = answered
                body = text.encode("utf-8")
                start_response(
                    f"{status} {HTTP_STATUS_CODES[status]}", [*headers.items(), ("Content-Length", str(len(body)))]
                )
                return [body]
        request = normalize_request(BackendRequest(environ))
        recorder._record_request(request)
        try:
            result = DynamoHandler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:  # as moto's convert_to_flask_response
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        return Response(response=content, status=status, headers=headers)(environ, start_response)

    return wsgi


def _item_answer(items: ItemAnswer, target: str, environ: dict[str, Any]) -> tuple[int, dict[str, str], str] | None:
    """Read the body (and leave it for moto to read again), then ask ``items``."""
    length = environ.get("CONTENT_LENGTH")
    if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != "/" or environ.get("QUERY_STRING"):
        return None
    if not length or not length.isdigit():
        return None
    raw = environ["wsgi.input"].read(int(length))
    environ["wsgi.input"] = io.BytesIO(raw)
    headers = {name[5:].replace("_", "-").lower(): value for name, value in environ.items() if name.startswith("HTTP_")}
    return items(target, headers, raw)


def cached_processing_maps(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Build each expression processor's node-type map once per processor, not once per node.

    An update expression is validated by ten processors, each walking the whole tree; for every
    node each one rebuilt its ``_processing_map()`` dict twice (to test the node's type, then to
    find the function). Those walks were about a fifth of moto's CPU under ``bench e2e`` (py-spy),
    and the rebuilt maps and their ``isinstance`` tuples a part of every step. Every processor's
    map has fixed keys, so the types are kept per class and the map per processor instance (its
    functions are the instance's bound methods); what runs on each node is unchanged.
    """
    from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser

    types: dict[type, tuple[type, ...]] = {}

    def nodes_to_be_processed(self: Any) -> tuple[type, ...]:
        kinds = types.get(type(self))
        if kinds is None:
            kinds = types[type(self)] = tuple(self._processing_map())
        return kinds

    def process(self: Any, node: Any) -> Any:
        processing = self.__dict__.get("_cached_processing_map")
        if processing is None:
            processing = self.__dict__["_cached_processing_map"] = self._processing_map()
        for class_key, processor in processing.items():
            if isinstance(node, class_key):
                return processor(node)
        return None

    setattr_(DepthFirstTraverser, "nodes_to_be_processed", nodes_to_be_processed)
    setattr_(DepthFirstTraverser, "process", process)
