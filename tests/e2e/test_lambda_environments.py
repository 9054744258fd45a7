"""The handlers run in two processes (``local_stack.environment``), each charger's frames in one of
them; a Lambda environment process that dies leaves its chargers to the stack's own process."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest
import websockets

from local_stack.emulator import shard_of
from local_stack.environment import DEFAULT_ENVIRONMENTS
from local_stack.process import start_stack, stop_stack
from ocpp_core.topics import DEFAULT_TOPICS

pytestmark = pytest.mark.timeout(120)


def _charger_of_shard(shard: int, count: int) -> str:
    for n in range(1000):
        cp = f"ENV-SHARD-{shard}-{n}"
        if shard_of(DEFAULT_TOPICS.inbound(cp), count) == shard:
            return cp
    raise AssertionError("no charger id found for the shard")


async def _heartbeat(url: str, cp: str) -> list[object]:
    async with websockets.connect(f"{url}/{cp}", subprotocols=["ocpp1.6"]) as ws:
        unique_id = str(uuid.uuid4())
        await ws.send(json.dumps([2, unique_id, "Heartbeat", {}]))
        async with asyncio.timeout(15):
            while True:
                frame = json.loads(await ws.recv())
                if frame[1] == unique_id:
                    return list(frame)


def test_each_process_answers_its_chargers_and_the_stack_takes_over_a_dead_ones(tmp_path: Path) -> None:
    assert DEFAULT_ENVIRONMENTS == 2
    stack = start_stack(tmp_path)
    try:
        children = [
            p
            for p in psutil.Process(stack.process.pid).children(recursive=True)
            if "local_stack.environment" in p.cmdline()
        ]
        assert len(children) == 1, [p.cmdline() for p in children]
        own, other = _charger_of_shard(0, 2), _charger_of_shard(1, 2)
        for cp in (own, other):
            frame = asyncio.run(_heartbeat(stack.ws_url, cp))
            assert frame[0] == 3 and "currentTime" in frame[2], frame
        children[0].send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 15
        while "handles its share now" not in stack.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "handles its share now" in stack.log.read_text(), stack.log_tail()
        frame = asyncio.run(_heartbeat(stack.ws_url, other))
        assert frame[0] == 3 and "currentTime" in frame[2], frame
    finally:
        stop_stack(stack)
