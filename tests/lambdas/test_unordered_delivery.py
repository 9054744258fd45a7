"""Property: under AWS's delivery (concurrent, unordered, duplicated) the state ends as in order.

Generated charger histories (boot, statuses, heartbeats, meter values, a 2.x session with meter
values, CSMS-call results, a reservation with its answer, its use by the 2.x session, its cancel and
the station's status updates of it, MQTT reconnects on the same socket and reconnects on a new socket with
unique ids counting from 1 again) are delivered twice: once in order, once as a random permutation
with duplicates by four threads at once, each through ``ocpp_core.process`` (or the presence
Lambda's ``apply_event``) and the real DynamoDB adapter on moto. The two tables must end in the
same state, and every delivery of one frame must get the same reply.

What OCPP itself rules out, and so the permutations do not produce:

* the answer to a CSMS call before the call is sent, or the answer to call N+1 before the answer
  to call N was applied: OCPP-J allows one outstanding call per direction, and the CSMS releases a
  charger's slot only once the previous answer's effect is written (``ocpp_core.calls``), by
  whichever delivery of it came first. So the first delivery of each CSMS-call answer runs on one
  lane, in order, each once the slot is free (``_Run.answer`` takes it, as the outbox does); their
  duplicates run anywhere after their call was sent. (Without the slot, a duplicate of answer N
  that completed the call, still writing its effect when the lane went on to N+1, could overwrite
  N+1's GetConfiguration value: a wrong test, seen once.)
* 1.6 frames carrying a transaction id before the StartTransaction that handed it out: the 1.6
  session is covered by its own test below (concurrent duplicates of one start).

What it does not rule out, and so the permutations do: any order of the charger's own frames (a
CALL whose first attempt failed is retried by IoT minutes later, after the charger moved on),
of presence events (the will and the ``connected`` after a reconnect), and duplicates of anything.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lambdas.adapters.dynamo import DynamoStore, create_table
from lambdas.lifecycle import apply_event
from ocpp_core import ProcessorConfig, process
from ocpp_core.calls import CHARGER_MAPS
from ocpp_core.handlers.reservations import reservation_view
from ocpp_core.keys import message_digest
from ocpp_core.timefmt import format_ms
from ocpp_core.versions import OcppVersion
from tests.fakes import START_MS, FakeClock, SeqIds, charger_connected

from .support import REGION

CP = "CP-P"
V16, V201 = OcppVersion.V16, OcppVersion.V201


@dataclass(frozen=True)
class Delivery:
    kind: str  # "frame" | "presence" | "result"
    body: dict[str, Any]


def _frame(version: OcppVersion, connection: str, at: int, message: list[Any]) -> Delivery:
    return Delivery(
        "frame",
        {
            "chargePointId": CP,
            "protocol": version.value,
            "connectionId": connection,
            "receivedAt": at,
            "frame": json.dumps(message),
            "topicChargePointId": CP,
        },
    )


def _presence(kind: str, connection: str, at: int, rule_at: int, version: OcppVersion) -> Delivery:
    return Delivery(
        "presence",
        {
            "event": kind,
            "chargePointId": CP,
            "protocol": version.value,
            "connectionId": connection,
            "at": at,
            "reason": None,
            "topicChargePointId": CP,
            "ruleTimestamp": rule_at,
        },
    )


@st.composite
def histories(
    draw: st.DrawFn,
) -> tuple[OcppVersion, list[Delivery], list[dict[str, Any]], list[dict[str, Any]]]:
    version = draw(st.sampled_from([V16, V201]))
    clock = [START_MS]

    def tick() -> int:
        clock[0] += draw(st.integers(1, 5000))
        return clock[0]

    deliveries: list[Delivery] = []
    calls: list[dict[str, Any]] = []
    reservations: list[dict[str, Any]] = []
    uid = [0]

    def call(connection: str, action: str, payload: dict[str, Any]) -> None:
        uid[0] += 1
        deliveries.append(_frame(version, connection, tick(), [2, str(uid[0]), action, payload]))

    def statuses(connection: str) -> None:
        for _ in range(draw(st.integers(1, 4))):
            connector = draw(st.integers(1, 2))
            at = tick()
            # equal charger timestamps happen (second resolution): the receive time then decides
            stamp = format_ms(at - at % 2000)
            if version is V16:
                status = draw(st.sampled_from(["Available", "Preparing", "Charging", "Faulted"]))
                payload = {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": stamp}
            else:
                status = draw(st.sampled_from(["Available", "Occupied", "Reserved", "Faulted"]))
                payload = {"timestamp": stamp, "connectorStatus": status, "evseId": 1, "connectorId": connector}
            uid[0] += 1
            deliveries.append(_frame(version, connection, at, [2, str(uid[0]), "StatusNotification", payload]))

    def boot(connection: str) -> None:
        if version is V16:
            call(connection, "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        else:
            call(
                connection,
                "BootNotification",
                {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}},
            )

    def answer(connection: str, action: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        """A CSMS call the operator API made (its record exists), and the charger's answer."""
        call_id = f"csms-{len(calls)}"
        calls.append({"uniqueId": call_id, "action": action, "payload": request})
        deliveries.append(Delivery("result", {**_frame(version, connection, tick(), [3, call_id, response]).body}))

    def reserve(connection: str) -> None:
        """Reservation 1, as the API records it before sending ReserveNow, and the charger's answer."""
        expiry = format_ms(START_MS + 10**8)
        reservations.append({"chargePointId": CP, "reservationId": 1, "idTag": "A", "expiryDate": expiry})
        if version is V16:
            request = {"connectorId": 1, "expiryDate": expiry, "idTag": "A", "reservationId": 1}
        else:
            request = {"id": 1, "expiryDateTime": expiry, "idToken": {"idToken": "A", "type": "Central"}}
        status = draw(st.sampled_from(["Accepted", "Accepted", "Occupied", "Rejected"]))
        answer(connection, "ReserveNow", request, {"status": status})

    def reservation_ends(connection: str) -> None:
        """What may end reservation 1: the station's update (2.x) and the operator's cancel."""
        if version is not V16 and draw(st.booleans()):
            update = draw(st.sampled_from(["Expired", "Removed"]))
            call(connection, "ReservationStatusUpdate", {"reservationId": 1, "reservationUpdateStatus": update})
        if draw(st.booleans()):
            answer(
                connection,
                "CancelReservation",
                {"reservationId": 1},
                {"status": draw(st.sampled_from(["Accepted", "Rejected"]))},
            )

    def session(connection: str) -> None:
        if version is V16:
            for _ in range(draw(st.integers(0, 3))):
                wh = draw(st.integers(0, 10**6))
                sample = {"timestamp": format_ms(tick()), "sampledValue": [{"value": str(wh)}]}
                call(connection, "MeterValues", {"connectorId": 1, "meterValue": [sample]})
            call(connection, "DataTransfer", {"vendorId": "acme", "data": draw(st.text(max_size=5))})
            return
        tx = f"tx-{connection}-{uid[0]}"  # a station's transaction ids are unique (E01)
        updates = draw(st.integers(0, 4))
        meter = draw(st.integers(0, 1000))
        for seq in range(updates + 2):
            event = "Started" if seq == 0 else "Ended" if seq == updates + 1 else "Updated"
            meter += draw(st.integers(0, 500))
            at = tick()
            payload: dict[str, Any] = {
                "eventType": event,
                "timestamp": format_ms(at),
                "triggerReason": "MeterValuePeriodic",
                "seqNo": seq,
                "transactionInfo": {"transactionId": tx},
                "evse": {"id": 1, "connectorId": 1},
            }
            if draw(st.booleans()):
                payload["meterValue"] = [{"timestamp": format_ms(at), "sampledValue": [{"value": meter}]}]
            if draw(st.booleans()):
                payload["transactionInfo"]["chargingState"] = draw(st.sampled_from(["Charging", "SuspendedEV", "Idle"]))
            if draw(st.booleans()):
                payload["offline"] = True
            if seq == 0 or draw(st.booleans()):
                payload["idToken"] = {"idToken": draw(st.sampled_from(["A", "B"])), "type": "ISO14443"}
            if seq == 0 and reservations and draw(st.booleans()):
                payload["reservationId"] = 1  # the session uses the reservation (E01, H01)
            call(connection, "TransactionEvent", payload)

    def results(connection: str) -> None:
        for _ in range(draw(st.integers(0, 2))):
            value = str(draw(st.integers(0, 3)))
            if version is V16:
                action, request = "GetConfiguration", {"key": ["HeartbeatInterval"]}
                response = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": value}]}
            else:
                action = "GetVariables"
                target = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
                request = {"getVariableData": [target]}
                response = {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": value, **target}]}
            answer(connection, action, request, response)

    deliveries.append(_presence("connected", "c1", tick(), clock[0], version))
    boot("c1")
    statuses("c1")
    if draw(st.booleans()):
        reserve("c1")
    session("c1")
    if reservations:
        reservation_ends("c1")
    results("c1")
    call("c1", "Heartbeat", {})
    reconnect = draw(st.sampled_from(["none", "mqtt", "socket"]))
    if reconnect == "mqtt":  # IoT Core's daily cut: the will, then connected again on the same socket
        deliveries.append(_presence("disconnected", "c1", START_MS, tick(), version))
        deliveries.append(_presence("connected", "c1", tick(), clock[0], version))
        call("c1", "Heartbeat", {})
    elif reconnect == "socket":  # a reboot: new socket, unique ids from 1 again
        deliveries.append(_presence("disconnected", "c1", tick(), clock[0], version))
        deliveries.append(_presence("connected", "c2", tick(), clock[0], version))
        uid[0] = 0
        boot("c2")
        statuses("c2")
        session("c2")
        call("c2", "Heartbeat", {})
    if draw(st.booleans()):
        deliveries.append(_presence("disconnected", "c2" if reconnect == "socket" else "c1", tick(), clock[0], version))
    return version, deliveries, calls, reservations


class _Run:
    """One table, the replies it gave (per frame), and a lock standing for per-item atomicity."""

    def __init__(
        self,
        client: Any,
        name: str,
        version: OcppVersion,
        calls: list[dict[str, Any]],
        reservations: list[dict[str, Any]],
    ) -> None:
        create_table(client, name)
        self.store = DynamoStore(client, name, clock_s=lambda: START_MS / 1000)
        self.store.update_charger(CP, {"registered": True})
        for reservation in reservations:
            self.store.create_reservation(CP, reservation["reservationId"], reservation)
        for record in calls:
            self.store.put_call(
                CP,
                record["uniqueId"],
                {
                    **record,
                    "chargePointId": CP,
                    "protocol": version.value,
                    "status": "pending",
                    "createdAt": START_MS,
                    "timeoutAt": START_MS + 10**9,
                },
            )
        self.replies: dict[str, set[str | None]] = {}
        self._lock = threading.Lock()
        self.clock, self.ids = FakeClock(), SeqIds()
        #: the CSMS calls sent so far: a charger can answer only those, duplicates included
        self._sent = {record["uniqueId"]: threading.Event() for record in calls}

    def answer(self, delivery: Delivery) -> None:
        """The CSMS sends the call, as its outbox does once the charger's slot is free (the previous
        call's answer applied, by whichever delivery of it came first), and the charger answers."""
        unique_id = json.loads(delivery.body["frame"])[1]
        deadline = time.monotonic() + 60
        while self.store.acquire_outstanding(CP, unique_id, START_MS, START_MS + 10**12) is not None:
            assert time.monotonic() < deadline, f"the slot was never freed for {unique_id}"
            time.sleep(0.001)
        self._sent[unique_id].set()
        self.deliver(delivery)

    def deliver(self, delivery: Delivery) -> None:
        if delivery.kind == "presence":
            apply_event(self.store, dict(delivery.body))
            return
        body = delivery.body
        if delivery.kind == "result":  # a redelivered answer: its call was sent (``answer``)
            unique_id = json.loads(body["frame"])[1]
            assert self._sent[unique_id].wait(60), f"{unique_id} answered but never sent"
        outcome = process(dict(body), store=self.store, clock=self.clock, ids=self.ids, config=ProcessorConfig())
        key = message_digest(body["connectionId"], json.loads(body["frame"])[1], body["frame"])
        with self._lock:
            self.replies.setdefault(key, set()).add(outcome.reply)

    def state(self, calls: list[dict[str, Any]]) -> dict[str, Any]:
        store = self.store
        return {
            "charger": store.get_charger(CP),
            "connected": charger_connected(store, CP),
            "statuses": store.list_statuses(CP),
            "transactions": store.list_transactions(CP),
            "meterValues": store.list_meter_values(CP),
            "events": store.list_events(CP),
            "maps": {name: store.get_charger_map(CP, name) for name in CHARGER_MAPS},
            "calls": [store.get_call(CP, c["uniqueId"]) for c in calls],
            # as the API shows them: the status derived from the facts the deliveries left
            "reservations": [reservation_view(r, START_MS) for r in store.list_reservations(CP)],
        }


def _differences(expected: Any, got: Any) -> Any:
    """The attributes that differ, record by record (a readable failure for long records)."""
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [_differences(e, g) for e, g in zip(expected, got, strict=True) if e != g]
    if isinstance(expected, dict) and isinstance(got, dict):
        return {k: (expected.get(k), got.get(k)) for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)}
    return (expected, got)


_examples = iter(range(10**9))


@settings(
    max_examples=30,
    deadline=None,
    # Shrinking re-runs whole histories on moto (minutes): the failing example is printed as found.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(history=histories(), data=st.data())
def test_any_interleaving_ends_in_the_in_order_state(moto, atomic_moto_requests, history, data) -> None:
    version, deliveries, calls, reservations = history
    client = boto3.client("dynamodb", region_name=REGION)
    n = next(_examples)
    in_order = _Run(client, f"ordered-{n}", version, calls, reservations)
    for delivery in deliveries:
        (in_order.answer if delivery.kind == "result" else in_order.deliver)(delivery)

    shuffled = _Run(client, f"shuffled-{n}", version, calls, reservations)
    results = [d for d in deliveries if d.kind == "result"]
    others = [d for d in deliveries if d.kind != "result"]
    duplicates = data.draw(st.lists(st.sampled_from(deliveries), max_size=len(deliveries)), label="duplicates")
    pool = data.draw(st.permutations(others + duplicates), label="order")

    def lane() -> None:  # the CSMS-call answers, in order (one outstanding call per direction)
        for delivery in results:
            shuffled.answer(delivery)

    with ThreadPoolExecutor(max_workers=4) as workers:
        futures = [workers.submit(lane)] + [workers.submit(shuffled.deliver, d) for d in pool]
        for future in futures:
            future.result()

    expected, got = in_order.state(calls), shuffled.state(calls)
    for part in expected:  # part by part, so that a failure names what diverged
        assert got[part] == expected[part], (part, _differences(expected[part], got[part]))
    for key, replies in shuffled.replies.items():
        assert len(replies) == 1, (key, replies)  # every delivery of one frame, one reply
        assert replies == in_order.replies[key]


def test_concurrent_duplicates_of_a_16_start_make_one_transaction(moto, atomic_moto_requests) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    run = _Run(client, "start-16", V16, [], [])
    start = {"connectorId": 1, "idTag": "T", "meterStart": 5, "timestamp": "2025-06-15T15:00:00Z"}
    delivery = _frame(V16, "c1", START_MS + 1, [2, "1", "StartTransaction", start])
    with ThreadPoolExecutor(max_workers=8) as workers:
        for future in [workers.submit(run.deliver, delivery) for _ in range(16)]:
            future.result()
    # A redelivery after every idempotency record would have expired, on a new connection too.
    run.deliver(_frame(V16, "c2", START_MS + 86_400_000 * 3, [2, "1", "StartTransaction", start]))
    replies = {reply for replies in run.replies.values() for reply in replies}
    assert len(replies) == 1
    assert len(run.store.list_transactions(CP)) == 1


@st.composite
def reservation_histories(draw: st.DrawFn) -> tuple[OcppVersion, list[Delivery], list[dict[str, Any]]]:
    """Everything that can happen to one reservation, each fact at its own time."""
    version = draw(st.sampled_from([V16, V201]))
    at = [START_MS]

    def tick() -> int:
        at[0] += draw(st.integers(1, 5000))
        return at[0]

    expiry = format_ms(START_MS + 10**8)
    deliveries: list[Delivery] = []
    calls: list[dict[str, Any]] = []
    if version is V16:
        reserve = {"connectorId": 1, "expiryDate": expiry, "idTag": "A", "reservationId": 1}
    else:
        reserve = {"id": 1, "expiryDateTime": expiry, "idToken": {"idToken": "A", "type": "Central"}}
    calls.append({"uniqueId": "csms-r", "action": "ReserveNow", "payload": reserve})
    status = draw(st.sampled_from(["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"]))
    deliveries.append(Delivery("result", _frame(version, "c1", tick(), [3, "csms-r", {"status": status}]).body))
    facts = draw(st.lists(st.sampled_from(["use", "update", "cancel"]), unique=True))
    for fact in draw(st.permutations(facts)):  # in time order, the order they happened in
        stamp = format_ms(tick())
        if fact == "use" and version is V16:
            start = {"connectorId": 1, "idTag": "A", "meterStart": 0, "timestamp": stamp, "reservationId": 1}
            deliveries.append(_frame(version, "c1", at[0], [2, "s1", "StartTransaction", start]))
        elif fact == "use":
            started = {
                "eventType": "Started",
                "timestamp": stamp,
                "triggerReason": "Authorized",
                "seqNo": 0,
                "transactionInfo": {"transactionId": "tx-r"},
                "reservationId": 1,
            }
            deliveries.append(_frame(version, "c1", at[0], [2, "s1", "TransactionEvent", started]))
        elif fact == "update" and version is not V16:
            update = {"reservationId": 1, "reservationUpdateStatus": draw(st.sampled_from(["Expired", "Removed"]))}
            deliveries.append(_frame(version, "c1", at[0], [2, "u1", "ReservationStatusUpdate", update]))
        elif fact == "cancel":
            calls.append({"uniqueId": "csms-x", "action": "CancelReservation", "payload": {"reservationId": 1}})
            answer = {"status": draw(st.sampled_from(["Accepted", "Rejected"]))}
            deliveries.append(Delivery("result", _frame(version, "c1", at[0], [3, "csms-x", answer]).body))
    return version, deliveries, calls


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=reservation_histories(), data=st.data())
def test_a_reservation_ends_as_in_order_whatever_the_order_of_its_facts(moto, history, data) -> None:
    """The earliest end wins, a late answer never replaces an end: the same status in any order.

    The CSMS-call answers keep their order (ReserveNow answered before its CancelReservation is
    sent: one outstanding call per direction); the charger's frames go anywhere, twice or not.
    """
    version, deliveries, calls = history
    reservation = {"chargePointId": CP, "reservationId": 1, "idTag": "A", "expiryDate": format_ms(START_MS + 10**8)}
    client = boto3.client("dynamodb", region_name=REGION)
    n = next(_examples)
    in_order = _Run(client, f"r-ordered-{n}", version, calls, [reservation])
    for delivery in deliveries:
        (in_order.answer if delivery.kind == "result" else in_order.deliver)(delivery)
    shuffled = _Run(client, f"r-shuffled-{n}", version, calls, [reservation])
    results = [d for d in deliveries if d.kind == "result"]
    frames = [d for d in deliveries if d.kind != "result"]
    again = data.draw(st.lists(st.sampled_from(frames), max_size=3)) if frames else []
    order = data.draw(st.permutations(frames + again))
    slots = sorted(data.draw(st.lists(st.integers(0, len(order)), min_size=len(results), max_size=len(results))))
    for index, delivery in enumerate([*order, None]):
        while slots and slots[0] == index:  # the answers, in their own order, anywhere among the frames
            slots.pop(0)
            shuffled.answer(results.pop(0))
        if delivery is not None:
            shuffled.deliver(delivery)
    expected = [reservation_view(r, START_MS) for r in in_order.store.list_reservations(CP)]
    got = [reservation_view(r, START_MS) for r in shuffled.store.list_reservations(CP)]
    assert got == expected, _differences(expected, got)
