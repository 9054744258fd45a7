"""Stages in one account never touch (DESIGN §8): topic root and client-id prefix from the settings."""

from __future__ import annotations

import asyncio
import io
import json

from websockets.asyncio.client import connect

from fargate_bridge.settings import Settings
from fargate_bridge.topics import Naming, naming
from ocpp_core.topics import Topics

from .support import bridge_settings, eventually, processor, running_bridge
from .test_bridge import run


def test_naming_follows_the_settings():
    plain = naming(Settings())
    assert (plain.inbound("CP1"), plain.outbound("CP1"), plain.events("CP1")) == (
        "ocpp/CP1/in",
        "ocpp/CP1/out",
        "ocpp/CP1/events",
    )
    assert plain.client_id("CP1") == "CP1"
    staged = naming(Settings(topic_root="prod/ocpp", client_id_prefix="prod-", basic_ingest_rule="prod_ingest"))
    assert staged == Naming(Topics("prod/ocpp"), "prod-", "prod_ingest")
    assert staged.client_id("CP1") == "prod-CP1"
    # Frames go to the rule through Basic Ingest; replies and presence stay on the plain topics.
    assert staged.inbound("CP1") == "$aws/rules/prod_ingest/prod/ocpp/CP1/in"
    assert staged.outbound("CP1") == "prod/ocpp/CP1/out"
    assert staged.events("CP1") == "prod/ocpp/CP1/events"


def test_two_stages_on_one_broker_never_see_each_other(mosquitto):
    cp = "CP-BOTH-STAGES"

    async def scenario():
        dev_metrics, prod_metrics = io.StringIO(), io.StringIO()
        dev = bridge_settings(mosquitto, topic_root="dev/ocpp", client_id_prefix="dev-", stage="dev")
        prod = bridge_settings(mosquitto, topic_root="prod/ocpp", client_id_prefix="prod-", stage="prod")
        with (
            processor(mosquitto, filters=("dev/ocpp/+/in", "dev/ocpp/+/events"), client_id="dev-proc") as dev_proc,
            processor(mosquitto, filters=("prod/ocpp/+/in", "prod/ocpp/+/events"), client_id="prod-proc") as prod_proc,
            processor(mosquitto, filters=("ocpp/#",), client_id="default-root") as default_proc,
        ):
            async with (
                running_bridge(dev, metrics_stream=dev_metrics) as dev_bridge,
                running_bridge(prod, metrics_stream=prod_metrics) as prod_bridge,
            ):
                async with (
                    connect(f"ws://127.0.0.1:{dev_bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as dev_ws,
                    connect(f"ws://127.0.0.1:{prod_bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as prod_ws,
                ):
                    await dev_ws.send('[2,"d1","Heartbeat",{}]')
                    await prod_ws.send('[2,"p1","Heartbeat",{}]')
                    dev_in = await eventually(lambda: dev_proc.json(f"dev/ocpp/{cp}/in"), what="dev frame")
                    prod_in = await eventually(lambda: prod_proc.json(f"prod/ocpp/{cp}/in"), what="prod frame")
                    assert [e["frame"] for e in dev_in] == ['[2,"d1","Heartbeat",{}]']
                    assert [e["frame"] for e in prod_in] == ['[2,"p1","Heartbeat",{}]']
                    assert all(t.startswith("dev/") for t in dev_proc.topics())
                    assert all(t.startswith("prod/") for t in prod_proc.topics())
                    # Replies reach their own stage's charger only.
                    await asyncio.to_thread(dev_proc.publish, f"dev/ocpp/{cp}/out", '[3,"d1",{}]')
                    await asyncio.to_thread(prod_proc.publish, f"prod/ocpp/{cp}/out", '[3,"p1",{}]')
                    assert await asyncio.wait_for(dev_ws.recv(), 5) == '[3,"d1",{}]'
                    assert await asyncio.wait_for(prod_ws.recv(), 5) == '[3,"p1",{}]'
                    # Same charger id in both stages: different client ids, so both sessions hold.
                    await asyncio.sleep(0.5)
                    assert dev_bridge.sessions[cp].connected and prod_bridge.sessions[cp].connected
                    assert (
                        dev_bridge.metrics.totals["MqttReconnects"] == prod_bridge.metrics.totals["MqttReconnects"] == 0
                    )
                    assert default_proc.topics() == []
        stages = {json.loads(line)["Stage"] for line in dev_metrics.getvalue().splitlines()}
        assert stages == {"dev"}
        assert {json.loads(line)["Stage"] for line in prod_metrics.getvalue().splitlines()} == {"prod"}

    run(scenario())
