"""moto in server mode, with each DynamoDB request atomic, as DynamoDB makes every request.

moto's backend does not serialize concurrent requests: its ``update_item`` reads the item,
evaluates the expression and writes it back without a lock, so two requests on one item at the
same moment (a charger's presence event and its BootNotification, processed at once by the rule
emulator's AWS-like delivery) can lose one's attributes. DynamoDB never does that: each
UpdateItem is atomic, a transaction all-or-nothing. One lock around each request gives the
local stack DynamoDB's semantics (moto serves requests one by one anyway, under the GIL).

These changes cut the CPU moto spends on each request (measured with ``bench e2e``), without
changing a byte of what a client sees:

* the item operations' responses are written with ``json.dumps``. moto 5.2 serializes every
  response through a generic, model-driven serializer that walks each attribute of each item
  against the botocore shape; for these operations the result moto builds is already the wire
  form, so that walk is pure cost (a third of an ``UpdateItem`` returning the item).
  ``tests/local_stack/test_moto_server.py`` compares the two on every shape the adapter uses.
* a transaction backs up only the items it writes. moto's ``transact_write_items`` deep-copies
  every table it touches before it starts, to roll back on failure: with a thousand chargers'
  items that is 0.45 s of CPU for each StartTransaction, during which every other request waits,
  and it grows with the table.
* an update expression's clause-count and overlap checks run once, not once per nested node
  (quadratic in moto; see :func:`root_only_update_checks`).
* each distinct update expression is parsed once, and its syntax tree copied by pickling rather
  than ``copy.deepcopy`` (:func:`cached_update_expressions`): moto parsed every ``UpdateItem``'s
  expression twice and deep-copied the tree once or twice more; and the ten processors that
  validate a tree build their node-type maps once, not twice per node
  (:func:`cached_processing_maps`).
* DynamoDB requests go straight to moto's DynamoDB handler (:func:`direct_dynamodb`), past the
  host matching and the Flask app per service that moto's server puts in front of it, and what
  that dispatch recomputed on each request is computed once (:func:`cached_dispatch`).
* one thread runs every request, one after the other, behind waitress: its I/O thread reads
  each request whole from any number of keep-alive connections and then serves it itself
  (:class:`InlineTasks`: waitress's own worker thread made its I/O loop spin). moto's own
  server starts a thread per connection, and under load those threads spend their time handing the GIL and the lock above to each other (measured on two cores
  with eight clients: 1.3 to 1.6 times the throughput of the threaded server). Werkzeug's
  single-threaded server was next: it closes each connection after one answer (HTTP/1.0) and
  waits on a slow client's body with every other request queued behind it, so under
  ``bench e2e`` moto sat 28 % idle while a Heartbeat's one request took 17 ms (p50); with
  waitress, 8.5 ms. DynamoDB requests are atomic anyway, so nothing is lost by not overlapping
  them. (Unlike moto's server, waitress drops header names with an underscore; the local stack
  sends none.)

* a Query looks at the items of its partition (or its index key values), not at the whole table
  sorted (:func:`keyed_queries`).

* GetItem and the adapter's UpdateItem shapes are answered on moto's own tables by a short path
  (:mod:`local_stack.moto_items`), everything else by moto; and the server applies DynamoDB's TTL,
  which moto does not (:mod:`local_stack.moto_ttl`, ``--ttl-interval``).

``python -m local_stack.moto_server -H HOST -p PORT`` takes moto.server's ``-H`` and ``-p``.
"""

from __future__ import annotations

import argparse
import calendar
import collections
import copy
import datetime
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .moto_dispatch import (
    cached_dispatch,
    cached_processing_maps,
    cached_update_expressions,
    direct_dynamodb,
    root_only_update_checks,
)
from .moto_items import CONTENT_TYPE, answer, plain_json_body, wire_default
from .moto_ttl import TimeToLive

#: DynamoDB requests the processor and the API send
ATOMIC_OPERATIONS = (
    "get_item",
    "put_item",
    "update_item",
    "delete_item",
    "query",
    "scan",
    "transact_write_items",
    "batch_get_item",
    "batch_write_item",
)


#: the request handlers that read the item before the backend writes it (``ReturnValues`` ALL_OLD)
READ_THEN_WRITE_HANDLERS = ("put_item", "update_item", "delete_item")


def serialize_dynamodb(setattr_: Callable[[Any, str, Any], None] = setattr) -> threading.RLock:
    """Wrap moto's DynamoDB backend so that each request runs alone (tests pass monkeypatch.setattr).
    The lock is returned, for what else works on moto's tables (:func:`local_stack.moto_items.answer`).

    The request handlers of PutItem, UpdateItem and DeleteItem hold it too: moto reads the old item
    for ``ReturnValues=ALL_OLD`` before the backend's (locked) write, so a write in between made it
    answer with an item its own condition never saw (a site's claim of a charger got back the
    membership another site had just deleted, took it for its own, and never undid it).
    DynamoDB returns the item the write replaced.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.RLock()
    wrapped = [(DynamoDBBackend, name) for name in ATOMIC_OPERATIONS]
    for owner, name in [*wrapped, *((DynamoHandler, name) for name in READ_THEN_WRITE_HANDLERS)]:
        original = getattr(owner, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        setattr_(owner, name, locked)
    return lock


#: DynamoDB operations whose result moto builds in wire form (items, keys, counts, capacity)
PLAIN_JSON_OPERATIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactWriteItems",
    }
)


def fast_dynamodb_responses(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Serialize the item operations' successful results with ``json.dumps`` (errors, and every
    other operation, still go through moto's serializer).

    Like moto's serializer, only the members of the operation's output shape are sent: moto's
    results carry a few of its own (``DeleteItem``'s ``ConsumedCapacityUnits``).
    """
    from moto.core.responses import ActionResult
    from moto.core.utils import get_service_model  # cached: the botocore model moto serializes with
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.serialized
    members: dict[str, frozenset[str]] = {}

    def output_members(action: str) -> frozenset[str]:
        if action not in members:
            shape = get_service_model("dynamodb").operation_model(action).output_shape
            members[action] = frozenset(shape.members) if shape is not None else frozenset()
        return members[action]

    def serialized(self: Any, action_result: ActionResult) -> Any:
        result = action_result.result
        action = self._get_action()
        if isinstance(result, Exception) or action not in PLAIN_JSON_OPERATIONS or not isinstance(result, dict):
            return original(self, action_result)
        wanted = output_members(action)
        body = plain_json_body({name: value for name, value in result.items() if name in wanted})
        return 200, {"Content-Type": CONTENT_TYPE, **self.response_headers}, body

    setattr_(DynamoHandler, "serialized", serialized)


def item_backup_transactions(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make ``transact_write_items`` back up the items it names instead of whole tables.

    The original still runs unchanged, with moto's table backup made a no-op (``Table.__deepcopy__``
    returns the table itself, only during the call and under the request lock that
    :func:`serialize_dynamodb` installs around it); when it raises, each named item is put back as
    it was (or removed, if the transaction created it). A transaction writes only the items it
    names (DynamoDB's own rule), so that is the same rollback.
    """
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        saved = _named_items(self, transact_items)
        if saved is None:  # a malformed request: moto's own path gives its own error
            return original(self, transact_items)
        streams = {
            id(table): (table.stream_shard, len(table.stream_shard.items)) for table, *_ in saved if table.stream_shard
        }
        Table.__deepcopy__ = lambda table, memo: table  # for this call only (removed below)
        try:
            return original(self, transact_items)
        except BaseException:
            for table, hash_value, range_value, item in saved:
                if item is not None:
                    if range_value is None:
                        table.items[hash_value] = item
                    else:
                        table.items[hash_value][range_value] = item
                elif table.get_item(hash_value, range_value) is not None:
                    table.delete_item(hash_value, range_value)
            # moto's own rollback restores the tables' copies, stream shards included: so the
            # stream records of the writes undone (and of undoing them) go too, last.
            for shard, length in streams.values():
                del shard.items[length:]
            raise
        finally:
            del Table.__deepcopy__

    setattr_(DynamoDBBackend, "transact_write_items", transact_write_items)


class _QueryScope:
    """A table as ``Table.query`` sees it: its ``all_items()`` only the items the key condition can
    match (everything else is the table's own)."""

    def __init__(self, table: Any, candidates: list[Any]):
        self._table = table
        self._candidates = candidates

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)

    def all_items(self) -> list[Any]:
        # moto's own order (Table.all_items), of fewer items
        return sorted(self._candidates, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)


def _index_candidates(table: Any, conditions: list[tuple[str, Any]]) -> list[Any]:
    """The items holding every ``(attribute, value)`` of an index's hash key (moto's own test:
    present and equal), in one pass with a dict lookup per item."""
    (name, value), *others = conditions
    every = (
        (item for held in table.items.values() for item in held.values())
        if table.range_key_attr
        else iter(table.items.values())
    )
    return [
        item
        for item in every
        if (found := item.attrs.get(name)) is not None
        and found == value
        and all(item.attrs.get(n) and item.attrs.get(n) == v for n, v in others)
    ]


def keyed_queries(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Make ``Table.query`` look only at the items its key condition names.

    moto's query sorts the whole table (``all_items()``, comparing ``DynamoType`` objects) and then
    keeps the items of the one partition, or of the index's key values: with 10,000 items the
    timer's two index queries cost its one thread 0.2 s of CPU (every request waiting), every
    2 s, growing with the table. The original still runs, on the table as seen through
    :class:`_QueryScope`: the base table's partition (``items[hash_key]``), or the items holding
    the index's hash key values (moto's own test), so the same items come out in the same order.
    """
    import inspect

    from moto.dynamodb.models.table import Table

    original = Table.query
    signature = inspect.signature(original)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        index_name = bound.arguments.get("index_name")
        conditions = bound.arguments.get("hash_key_conditions") or []
        if not index_name:
            held = self.items.get(bound.arguments.get("hash_key"))
            candidates = [] if held is None else list(held.values()) if self.range_key_attr else [held]
        elif conditions:
            candidates = _index_candidates(self, conditions)
        else:
            return original(self, *args, **kwargs)
        return original(_QueryScope(self, candidates), *args, **kwargs)

    setattr_(Table, "query", query)


#: stream records kept for a consumer that never reads (the local stack's poller reads them all)
MAX_STREAM_RECORDS = 100_000


def _may_make_events(kind: str, new: Any) -> bool:
    """The event source mapping's filter (infra/events.py, ``local_stack.event_stream.matches_filter``)."""
    from ocpp_core import keys
    from ocpp_core.events import passes_stream_filter

    if new is None or new.range_key is None:
        return False
    written = new.attrs.get(keys.WRITE_KIND)
    return passes_stream_filter(kind, str(new.range_key.value), written.value if written is not None else None)


def _stream_default(value: Any) -> Any:
    if isinstance(value, datetime.datetime):  # ApproximateCreationDateTime: epoch seconds on the wire
        return calendar.timegm(value.utctimetuple()) + value.microsecond // 1000 / 1000  # ms, as moto's
    return wire_default(value)


def fast_stream_responses(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Serialize GetRecords with ``json.dumps``: moto's generic serializer takes about 3 ms a record
    (a CHARGER item's images), as much as the write that made it; the records are in wire form."""
    from moto.core.responses import ActionResult
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    original = DynamoDBStreamsHandler.serialized

    def serialized(self: Any, action_result: ActionResult) -> Any:
        result = action_result.result
        if isinstance(result, Exception) or self._get_action() != "GetRecords" or not isinstance(result, dict):
            return original(self, action_result)
        body = json.dumps(result, separators=(",", ":"), default=_stream_default)
        return 200, {"Content-Type": CONTENT_TYPE, **self.response_headers}, body

    setattr_(DynamoDBStreamsHandler, "serialized", serialized)


def consumed_streams(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Let the table's stream forget the records its one reader has read, and keep only those the
    event source mapping's filter would pass (:func:`_may_make_events`).

    moto keeps every stream record for ever (it empties the list only for its own Lambda event
    source mappings), so a long local run would grow without bound. The local stack has one
    reader, its event poller (``local_stack.event_stream``): a read from a sequence number drops the
    records before it, and at most :data:`MAX_STREAM_RECORDS` are kept unread. Sequence numbers
    stay those moto gives (an offset counts the records dropped).
    """
    from moto.dynamodb.models.table import StreamRecord, StreamShard

    def add(self: Any, old: Any, new: Any) -> None:
        kind = "INSERT" if old is None else "REMOVE" if new is None else "MODIFY"
        if not _may_make_events(kind, new):
            return  # what the event source mapping's filter drops (infra): its one reader never sees it
        dropped = getattr(self, "dropped", 0)
        seq = self.starting_sequence_number + dropped + len(self.items)
        view = self.table.stream_specification["StreamViewType"]
        self.items.append(StreamRecord(self.table, view, kind, old, new, seq))
        overflow = len(self.items) - MAX_STREAM_RECORDS
        if overflow > 0:
            del self.items[:overflow]
            self.dropped = dropped + overflow

    def get(self: Any, start: int, quantity: int) -> list[dict[str, Any]]:
        dropped = getattr(self, "dropped", 0)
        index = start - self.starting_sequence_number - dropped
        if index > 0:
            read = min(index, len(self.items))
            del self.items[:read]
            self.dropped = dropped + read
            index -= read
        index = max(index, 0)
        return [record.to_json() for record in self.items[index : index + quantity]]

    setattr_(StreamShard, "add", add)
    setattr_(StreamShard, "get", get)


def _named_items(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any, Any]] | None:
    """(table, hash key, range key, a copy of the item or None) for each item a transaction names."""
    saved = []
    try:
        for entry in transact_items:
            ((_, operation),) = entry.items()
            table = backend.tables.get(operation.get("TableName"))
            if table is None:
                return None
            key = operation.get("Key")
            if key is None:
                item = operation["Item"]
                key = {name: item[name] for name in (table.hash_key_attr, table.range_key_attr) if name}
            hash_value, range_value = backend.get_keys_value(table, key)
            saved.append((table, hash_value, range_value, copy.deepcopy(table.get_item(hash_value, range_value))))
    except Exception:  # noqa: BLE001 - moto raises its validation errors for this request itself
        return None
    return saved


def main(argv: list[str] | None = None) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    import process_gc

    parser = argparse.ArgumentParser(description="moto server for the local stack")
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument(
        "--ttl-interval", type=float, default=0.0, help="seconds between two TTL passes (moto has none); 0: never"
    )
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("MOTO_PORT", str(args.port))  # moto builds some URLs from it

    # As moto's own server: a stop signal is a clean exit.
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda *_: sys.exit(0))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("local_stack").setLevel(logging.INFO)  # the TTL's deletions (moto.log)
    # A line per request on stderr costs more than some requests; errors are still logged.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("waitress").setLevel(logging.WARNING)
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # "Task queue depth is 2", per request
    item_backup_transactions()
    consumed_streams()
    fast_stream_responses()
    lock = serialize_dynamodb()  # after: the request lock is around the whole transaction
    fast_dynamodb_responses()
    root_only_update_checks()
    cached_update_expressions()
    cached_processing_maps()
    cached_dispatch()
    keyed_queries()

    def items(target: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, str], str] | None:
        with lock:
            return answer(target, headers, raw)

    app = direct_dynamodb(DomainDispatcherApplication(create_backend_app), items)
    TimeToLive(lock, interval_s=args.ttl_interval).start()
    process_gc.install()  # the table's items are most of this heap
    serve_inline(app, args.host, args.port)


class InlineTasks:
    """waitress's task dispatcher without a worker thread: the I/O thread serves each request it
    has read, between two polls of its sockets (``create_server``'s ``_dispatcher``).

    With waitress's one worker thread, its I/O thread polled its sockets 168 times per request
    while the worker served (counted over 3,400 UpdateItems from four clients): a channel whose
    task is running stays "writable" while the task holds its output buffer, so ``select``
    returns at once, again and again, and the two threads take the GIL from each other.
    Served inline, a request never overlaps the loop. The output buffer's high-water mark is set
    out of reach: a task waits for the loop to drain it only above that mark, and here the task
    is the loop.
    """

    def __init__(self) -> None:
        self.pending: collections.deque[Any] = collections.deque()

    def set_thread_count(self, count: int) -> None:
        pass  # no threads

    def add_task(self, task: Any) -> None:
        self.pending.append(task)  # called from the loop, inside a channel's read (under its lock)

    def run_pending(self) -> None:
        while self.pending:
            task = self.pending.popleft()
            try:
                task.service()
            except Exception:  # not SystemExit: the stop signal's handler raises it in this thread
                logging.getLogger(__name__).exception("moto server: failed serving %r", task)

    def shutdown(self, cancel_pending: bool = True, timeout: float = 5) -> bool:
        while self.pending:
            self.pending.popleft().cancel()
        return True


def serve_inline(app: Any, host: str, port: int, stop: threading.Event | None = None) -> None:
    """waitress's HTTP/1.1 server, its requests served by its I/O thread (:class:`InlineTasks`),
    until ``stop`` is set (checked at least once a second) or a signal ends the process."""
    import waitress
    from waitress import wasyncore

    tasks = InlineTasks()
    server = waitress.create_server(
        app,
        host=host,
        port=port,
        connection_limit=500,  # more connections than the stack opens
        backlog=1024,
        outbuf_high_watermark=1 << 40,
        _dispatcher=tasks,
    )
    try:
        while stop is None or not stop.is_set():
            wasyncore.poll(0.0 if tasks.pending else 1.0, server._map)
            tasks.run_pending()
    finally:
        tasks.shutdown()
        server.close()


if __name__ == "__main__":
    main()
