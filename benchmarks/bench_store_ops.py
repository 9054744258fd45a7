"""``bench store-ops``: DynamoDB requests per frame, counted at the boto3 client.

The processor runs with the real DynamoDB adapter on moto (in process); every request the adapter
sends is counted, conditional writes that lose included (they are billed too). Three figures:

* ``reads_per_msg`` / ``writes_per_msg``: over the mix of ``bench processor`` (boot, heartbeat,
  status, authorize, start, meter values, stop, data transfer; OCPP 1.6);
* ``day_mix_requests_per_frame``: over one charger's day as docs/deployment.md assumes it
  (288 Heartbeats, 4 sessions of 13 frames, 30 StatusNotifications, 5 other frames: 375 frames),
  for 1.6 and for 2.0.1; the larger of the two is printed, both with ``--verbose``;
* ``heartbeat_requests``: one Heartbeat of a booted charger.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from ocpp_core import ProcessorConfig, UnknownChargerPolicy, process
from ocpp_core.timefmt import format_ms
from ocpp_core.versions import OcppVersion

READS = frozenset({"get_item", "query", "scan", "batch_get_item"})
WRITES = frozenset({"put_item", "update_item", "delete_item", "transact_write_items", "batch_write_item"})
START_MS = 1_750_000_000_000
CP = "CP-BENCH"


class CountingClient:
    """A boto3 DynamoDB client that counts the requests sent through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.reads = 0
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if name not in READS and name not in WRITES:
            return target

        def counted(*args: Any, **kwargs: Any) -> Any:
            if name in READS:
                self.reads += 1
            else:
                self.writes += 1
            return target(*args, **kwargs)

        return counted

    @property
    def requests(self) -> int:
        return self.reads + self.writes


class _Clock:
    def __init__(self) -> None:
        self.ms = START_MS

    def now_ms(self) -> int:
        return self.ms


class _Ids:
    def __init__(self) -> None:
        self._n = itertools.count(1)

    def new_id(self) -> str:
        return f"id-{next(self._n)}"


class Charger:
    """One charger's frames through ``process`` with the DynamoDB adapter; its requests counted."""

    def __init__(self, version: OcppVersion, table: str) -> None:
        import boto3

        from lambdas.adapters.dynamo import DynamoStore, create_table

        raw = boto3.client("dynamodb", region_name="us-east-1")
        create_table(raw, table)
        self.client = CountingClient(raw)
        self.store = DynamoStore(self.client, table, clock_s=lambda: self.clock.ms / 1000)
        self.store.update_charger(CP, {"registered": True})
        self.store.put_id_token("TAG-1", {"status": "Accepted"})
        self.version = version
        self.clock, self.ids = _Clock(), _Ids()
        self.config = ProcessorConfig(unknown_chargers=UnknownChargerPolicy.ACCEPT)
        self._uid = itertools.count(1)
        self.client.reads = self.client.writes = 0

    def send(self, action: str, payload: dict[str, Any]) -> Any:
        self.clock.ms += 1000
        envelope = {
            "chargePointId": CP,
            "protocol": self.version.value,
            "connectionId": "conn-1",
            "receivedAt": self.clock.ms,
            "frame": json.dumps([2, str(next(self._uid)), action, payload]),
        }
        outcome = process(envelope, store=self.store, clock=self.clock, ids=self.ids, config=self.config)
        assert outcome.reply is not None and outcome.reply.startswith("[3,"), outcome
        return json.loads(outcome.reply)[2]

    @property
    def now_iso(self) -> str:
        return format_ms(self.clock.ms)


def _status(charger: Charger, connector: int, status: str) -> None:
    if charger.version is OcppVersion.V16:
        payload = {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": charger.now_iso}
    else:
        status = {"Charging": "Occupied", "Preparing": "Occupied", "Finishing": "Occupied"}.get(status, status)
        payload = {"timestamp": charger.now_iso, "connectorStatus": status, "evseId": 1, "connectorId": connector}
    charger.send("StatusNotification", payload)


def _session(charger: Charger, n: int) -> None:
    """13 frames, as docs/deployment.md measured them with the simulator."""
    v16 = charger.version is OcppVersion.V16
    if v16:
        charger.send("Authorize", {"idTag": "TAG-1"})
        _status(charger, 1, "Charging")
        tx = charger.send(
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG-1", "meterStart": n * 10_000, "timestamp": charger.now_iso},
        )["transactionId"]
        for i in range(8):
            sample = {"timestamp": charger.now_iso, "sampledValue": [{"value": str(n * 10_000 + i * 100)}]}
            charger.send("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [sample]})
        charger.send(
            "StopTransaction", {"transactionId": tx, "meterStop": n * 10_000 + 900, "timestamp": charger.now_iso}
        )
        _status(charger, 1, "Available")
        return
    charger.send("Authorize", {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}})
    _status(charger, 1, "Occupied")
    for seq in range(10):
        event = "Started" if seq == 0 else "Ended" if seq == 9 else "Updated"
        payload: dict[str, Any] = {
            "eventType": event,
            "timestamp": charger.now_iso,
            "triggerReason": "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": f"tx-{n}"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": charger.now_iso, "sampledValue": [{"value": n * 10_000 + seq * 100}]}],
        }
        if seq == 0:
            payload["idToken"] = {"idToken": "TAG-1", "type": "ISO14443"}
        charger.send("TransactionEvent", payload)
    _status(charger, 1, "Available")


def _boot(charger: Charger) -> None:
    if charger.version is OcppVersion.V16:
        charger.send("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    else:
        charger.send("BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}})


def day(charger: Charger) -> Iterator[None]:
    """One day of docs/deployment.md's traffic assumption, as a generator of frames sent."""
    _boot(charger)
    yield
    others = [
        ("DataTransfer", {"vendorId": "acme"}),
        ("FirmwareStatusNotification", {"status": "Idle"}),
        ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": START_ISO}),
        ("DataTransfer", {"vendorId": "acme", "data": "x"}),
    ]
    for action, payload in others:
        charger.send(action, payload)
        yield
    for i in range(30):
        _status(charger, 2, "Available" if i % 2 else "Unavailable")
        yield
    for n in range(4):
        _session(charger, n)
        for _ in range(13):
            yield
    for _ in range(288):
        charger.send("Heartbeat", {})
        yield


START_ISO = format_ms(START_MS)


def day_mix_requests(version: OcppVersion, table: str) -> tuple[float, int]:
    """(requests per frame over the day, frames)."""
    per_frame, _, frames = day_mix_split(version, table)
    return per_frame, frames


def day_mix_split(version: OcppVersion, table: str) -> tuple[float, float, int]:
    """(requests per frame, of which reads per frame, frames) over the day."""
    charger = Charger(version, table)
    frames = sum(1 for _ in day(charger))
    return charger.client.requests / frames, charger.client.reads / frames, frames


def heartbeat_requests(table: str) -> int:
    charger = Charger(OcppVersion.V16, table)
    _boot(charger)
    before = charger.client.requests
    charger.send("Heartbeat", {})
    return charger.client.requests - before


def mix_requests(table: str, messages: int) -> tuple[float, float]:
    """Reads and writes per frame over the ``bench processor`` mix."""
    from benchmarks.bench_processor import _frames

    charger = Charger(OcppVersion.V16, table)
    frames = _frames(messages)
    for text in frames:
        charger.clock.ms += 1000
        envelope = {
            "chargePointId": CP,
            "protocol": "ocpp1.6",
            "connectionId": "conn-1",
            "receivedAt": charger.clock.ms,
            "frame": text,
        }
        process(envelope, store=charger.store, clock=charger.clock, ids=charger.ids, config=charger.config)
    return charger.client.reads / len(frames), charger.client.writes / len(frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600, help="frames of the processor mix (default 600)")
    parser.add_argument("--verbose", action="store_true", help="also print the day mix per version")
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    from moto import mock_aws

    with mock_aws():
        reads, writes = mix_requests("mix", args.messages)
        per_version = {
            version: day_mix_split(version, f"day-{i}") for i, version in enumerate((OcppVersion.V16, OcppVersion.V201))
        }
        heartbeat = heartbeat_requests("heartbeat")
    day_mix = max(per_frame for per_frame, _, _ in per_version.values())
    print(
        f"bench store-ops: reads_per_msg={reads:.2f} writes_per_msg={writes:.2f} "
        f"day_mix_requests_per_frame={day_mix:.2f} heartbeat_requests={heartbeat}"
    )
    if args.verbose:
        for version, (per_frame, reads_per_frame, frames) in per_version.items():
            print(
                f"# day mix {version.value}: {per_frame:.3f} DynamoDB requests per frame over {frames} frames "
                f"({per_frame - reads_per_frame:.3f} writes, {reads_per_frame:.3f} reads)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
