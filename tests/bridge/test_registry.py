"""The registry port: the DynamoDB adapter (moto), the cached reader, the authenticator."""

from __future__ import annotations

import asyncio
import threading

import boto3
import pytest
from moto import mock_aws
from websockets.asyncio.client import connect

from fargate_bridge.auth import Authenticator, AuthPolicy, Verdict
from fargate_bridge.errors import RegistryUnavailable
from fargate_bridge.registry import ChargerCredentials, DynamoChargerRegistry, InMemoryChargerRegistry, RegistryReader
from fargate_bridge.settings import UnknownChargers
from ocpp_core.keys import charger_key
from ocpp_core.passwords import hash_password

from .support import basic, bridge_settings, running_bridge
from .test_bridge import expect_status, run

TABLE = "csms-test"
HASH = hash_password("a-machine-password-16+", b"fixed-salt-1234")


@pytest.fixture
def dynamo(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )

        def put(cp: str, **attributes):
            item = {k: {"S": v} for k, v in charger_key(cp).items()}
            for name, value in attributes.items():
                item[name] = {"BOOL": value} if isinstance(value, bool) else {"S": value}
            client.put_item(TableName=TABLE, Item=item)

        put("CP-PW", passwordHash=HASH, registrationStatus="Accepted", registered=True)
        put("CP-NOPW", registrationStatus="Pending")
        put("CP-SEEN", connectionId="abc")  # a presence record only
        yield client


def test_dynamo_adapter_reads_the_charger_item(dynamo):
    registry = DynamoChargerRegistry(TABLE)
    assert registry.lookup("CP-PW") == ChargerCredentials(HASH, "Accepted", True)
    assert registry.lookup("CP-NOPW") == ChargerCredentials(None, "Pending", False)
    assert registry.lookup("CP-SEEN") is None
    assert registry.lookup("CP-NONE") is None


def test_dynamo_adapter_failures_become_registry_unavailable(dynamo):
    with pytest.raises(RegistryUnavailable):
        DynamoChargerRegistry("no-such-table").lookup("CP-PW")


class CountingRegistry(InMemoryChargerRegistry):
    def __init__(self, *args, gate: threading.Event | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.gate = gate

    def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(5)
        return super().lookup(charge_point_id)


def test_reader_caches_and_merges_concurrent_lookups():
    gate = threading.Event()
    registry = CountingRegistry({"A": ChargerCredentials(registration_status="Accepted")}, gate=gate)
    reader = RegistryReader(registry, ttl=60)

    async def scenario():
        lookups = [asyncio.create_task(reader.lookup("A")) for _ in range(50)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*lookups)
        assert all(r == ChargerCredentials(registration_status="Accepted") for r in results)
        assert await reader.lookup("A") is results[0]
        assert await reader.lookup("B") is None
        assert await reader.lookup("B") is None  # unknown ids are cached too (a storm of strangers)
        reader.forget("A")
        await reader.lookup("A")

    asyncio.run(scenario())
    assert registry.calls == 3


def test_reader_turns_any_backend_error_into_registry_unavailable():
    class Broken:
        def lookup(self, charge_point_id):
            raise ConnectionError("boom")

    async def scenario():
        with pytest.raises(RegistryUnavailable):
            await RegistryReader(Broken()).lookup("A")

    asyncio.run(scenario())


def test_authenticator_verdicts():
    registry = InMemoryChargerRegistry({"CP-PW": ChargerCredentials(password_hash=HASH)})
    auth = Authenticator(RegistryReader(registry, ttl=0), AuthPolicy(UnknownChargers.REJECT))

    async def scenario():
        assert await auth.authenticate("CP-PW", "a-machine-password-16+") is Verdict.ACCEPTED
        assert await auth.authenticate("CP-PW", None) is Verdict.MISSING_PASSWORD
        auth.backoff.succeeded("CP-PW")
        assert await auth.authenticate("CP-PW", "wrong") is Verdict.WRONG_PASSWORD
        assert await auth.authenticate("CP-X", "x") is Verdict.UNKNOWN

    asyncio.run(scenario())


def test_bridge_with_the_dynamodb_registry(dynamo, mosquitto):
    settings = bridge_settings(
        mosquitto, registry_table=TABLE, unknown_chargers=UnknownChargers.REJECT, registry_cache_ttl=30.0
    )

    async def scenario():
        async with running_bridge(settings) as bridge:
            v16 = {"subprotocols": ["ocpp1.6"]}
            good = {"Authorization": basic("CP-PW", "a-machine-password-16+")}
            async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/CP-PW", additional_headers=good, **v16):
                pass
            async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/CP-NOPW", **v16):
                pass
            await expect_status(f"ws://127.0.0.1:{bridge.port}/ocpp/CP-SEEN", 401, **v16)
            await expect_status(f"ws://127.0.0.1:{bridge.port}/ocpp/CP-NONE", 401, **v16)

    run(scenario())
