"""moto in server mode, with each DynamoDB request atomic, as DynamoDB makes every request.

moto's backend does not serialize concurrent requests: its ``update_item`` reads the item,
evaluates the expression and writes it back without a lock, so two requests on one item at the
same moment (a charger's presence event and its BootNotification, processed at once by the rule
emulator's AWS-like delivery) can lose one's attributes. DynamoDB never does that: each
UpdateItem is atomic, a transaction all-or-nothing. One lock around each request gives the
local stack DynamoDB's semantics (moto serves requests one by one anyway, under the GIL).

``python -m local_stack.moto_server -H HOST -p PORT`` takes moto.server's arguments.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

#: DynamoDB requests the processor, the API and the sweeper send
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


def serialize_dynamodb(setattr_: Callable[[Any, str, Any], None] = setattr) -> None:
    """Wrap moto's DynamoDB backend so that each request runs alone (tests pass monkeypatch.setattr)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ATOMIC_OPERATIONS:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        setattr_(DynamoDBBackend, name, locked)


def main(argv: list[str] | None = None) -> None:
    from moto.server import main as moto_main

    serialize_dynamodb()
    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
