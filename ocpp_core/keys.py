"""Storage layout: the keys of the single DynamoDB table (DESIGN §6).

Pure string functions shared by every adapter (processor, operator API, bridge registry
reads) so that the layout is written down once. Partition key ``pk``, sort key ``sk``,
TTL attribute ``expiresAt`` (epoch seconds; DynamoDB deletes lazily, so readers check it).

| item | pk | sk |
|---|---|---|
| charger (registry, boot, current connection) | ``CP#<id>`` | ``CHARGER`` |
| one map of the charger (``variables``, ``configuration``), a key per attribute | ``CP#<id>`` | ``MAP#<name>`` |
| one bridge connection (latest connected / disconnected) | ``CP#<id>`` | ``CONN#<connectionId>`` |
| connector / EVSE status | ``CP#<id>`` | ``STATUS#<label>`` (``C1``, ``E1C2``, ``E1``) |
| transaction | ``CP#<id>`` | ``TX#<transactionId>`` |
| 1.6 transaction start (its content's digest -> the id it got) | ``CP#<id>`` | ``TXSTART#<digest>`` |
| meter values of one frame | ``CP#<id>`` | ``MV#<frame digest>`` |
| event record (reports, security events...) | ``CP#<id>`` | ``EVT#<kind>#<frame digest>`` |
| processed message (idempotency, extensions only) | ``CP#<id>`` | ``MSG#<frame digest>`` |
| CSMS call | ``CP#<id>`` | ``CALL#<uniqueId>`` |
| outstanding CSMS call lock (listed under ``BUSY`` until its timeout) | ``CP#<id>`` | ``OUTSTANDING`` |
| outbox: a CSMS call the system decided, waiting for the charger (DESIGN §10) | ``CP#<id>`` | ``OUTBOX#<slot>`` |
| charging profile the CSMS believes installed | ``CP#<id>`` | ``PROFILE#<key>`` |
| composite schedule the charger reported | ``CP#<id>`` | ``COMPOSITE#<label>`` |
| the CA certificate of a CA whose key is in KMS (made once, first writer wins) | ``CA`` | ``CHARGERS`` |
| certificate the CA issued to the charger (listed under ``CERTS`` by its end) | ``CP#<id>`` | ``CERT#<serial, hex>`` |
| reservation | ``CP#<id>`` | ``RES#<reservationId, 10 digits>`` |
| reservation id -> its charger | ``RESERVATION#<reservationId>`` | ``RESERVATION`` |
| upload request (GetDiagnostics / GetLog without a location: URL, call, status) | ``CP#<id>`` | ``UPLOAD#<uploadId>`` |
| upload id -> its request (the file server's one GetItem; the one-file claim) | ``UPLOAD#<uploadId>`` | ``UPLOAD`` |
| file a charger uploaded (``ocpp_core.files``) | ``CP#<id>`` | ``FILE#<fileId>`` |
| firmware image for UpdateFirmware (listed under ``FIRMWARE``) | ``FIRMWARE#<firmwareId>`` | ``FIRMWARE`` |
| id token | ``IDTAG#<idTag>`` | ``IDTAG`` |
| site (smart charging: limit, phases, chargers) | ``SITE#<siteId>`` | ``SITE`` |
| site membership of a charger (``siteId``: at most one site) | ``CP#<id>`` | ``SITE`` |
| balancing state of a site (sessions, shares, profiles granted) | ``SITE#<siteId>`` | ``BALANCE`` |
| transaction id counter | ``COUNTER`` | ``TRANSACTION`` |
| reservation id counter | ``COUNTER`` | ``RESERVATION`` |

Index ``list`` (keys only, sparse): ``listPk`` = ``CHARGERS``, ``listSk`` = charger id, on charger items;
``listPk`` = ``SITES``, ``listSk`` = site id, on site items; ``listPk`` = ``OUTBOX``, ``listSk`` =
``<charger id>#<slot>``, on outbox items; ``listPk`` = ``BUSY``, ``listSk`` = ``<untilMs, 15 digits>#<charger
id>``, on outstanding-call locks (the timer finds the overdue ones without a scan); ``listPk`` =
``FIRMWARE``, ``listSk`` = firmware id (time-ordered), on firmware items.

A *frame digest* names one frame as OCPP-J identifies it: "a message ID for any CALL message MUST be
different from all message IDs previously used by the same sender for any other CALL messages on the
same WebSocket connection" (OCPP-J 1.6 §4.1.3; OCPP 2.0.1 / 2.1 part 4 §4.2.1, same wording). Unique
ids are unique per sender *and connection* only, and many chargers count from 1 again after a reboot,
so the digest covers the connection, the unique id and the frame's bytes: the same frame delivered
again gets the same keys (its writes overwrite themselves), anything else is a new message.
"""

from __future__ import annotations

import hashlib

PK = "pk"
SK = "sk"
TTL_ATTRIBUTE = "expiresAt"

CHARGER_SK = "CHARGER"
#: What the last write of a charger item was: a frame's ``lastSeen`` touch (``TOUCH_WRITE``) or
#: anything else (``STATE_WRITE``). The stream's event source mapping drops the records of touches
#: (infra/events.py): they make no event, and they are most of the table's writes (every Heartbeat).
WRITE_KIND = "lastWrite"
TOUCH_WRITE = "touch"
STATE_WRITE = "state"
#: On a charger item whose write created it while its site could not be read: the next write of
#: the item reads the membership again (``DynamoStore._write_charger``).
SITE_PENDING = "sitePending"

#: The sparse index that lists chargers without a table scan: only charger items carry its keys
#: (``LIST_PK`` = ``CHARGERS``, ``LIST_SK`` = the charger id). Keys only: the many updates of
#: a charger's other attributes (last seen on every message) never write to it. Site items carry
#: them too, under ``LIST_PK`` = ``SITES``: one index, two lists that never mix.
LIST_INDEX = "list"
LIST_PK = "listPk"
LIST_SK = "listSk"
CHARGERS_LIST = "CHARGERS"
SITES_LIST = "SITES"
SITE_SK = "SITE"
#: the sort key of a charger's site membership item (in the charger's partition)
MEMBERSHIP_SK = "SITE"
OUTSTANDING_SK = "OUTSTANDING"
OUTBOX_LIST = "OUTBOX"
CERTIFICATES_LIST = "CERTS"
CERTIFICATE_PREFIX = "CERT#"
ROOT_CERTIFICATE_PK, ROOT_CERTIFICATE_SK = "CA", "CHARGERS"
BUSY_LIST = "BUSY"
OUTBOX_PREFIX = "OUTBOX#"
PROFILE_PREFIX = "PROFILE#"
COMPOSITE_PREFIX = "COMPOSITE#"
BALANCE_SK = "BALANCE"
ID_TAG_SK = "IDTAG"
COUNTER_PK = "COUNTER"
TRANSACTION_COUNTER_SK = "TRANSACTION"
STATUS_PREFIX = "STATUS#"
TRANSACTION_PREFIX = "TX#"
METER_VALUES_PREFIX = "MV#"
EVENT_PREFIX = "EVT#"
CONNECTION_PREFIX = "CONN#"
CALL_PREFIX = "CALL#"
RESERVATION_PREFIX = "RES#"
RESERVATION_COUNTER_SK = "RESERVATION"
RESERVATION_POINTER_SK = "RESERVATION"
UPLOAD_PREFIX = "UPLOAD#"
UPLOAD_POINTER_SK = "UPLOAD"
FILE_PREFIX = "FILE#"
FIRMWARE_SK = "FIRMWARE"
FIRMWARE_LIST = "FIRMWARE"


def charger_pk(charge_point_id: str) -> str:
    return "CP#" + charge_point_id


def charger_key(charge_point_id: str) -> dict[str, str]:
    return {PK: charger_pk(charge_point_id), SK: CHARGER_SK}


def status_sk(label: str) -> str:
    """``label`` names the connector: ``C1`` (1.6 connector 1), ``E1C2`` (2.x EVSE 1 connector 2)."""
    return STATUS_PREFIX + label


def transaction_sk(transaction_id: str) -> str:
    return TRANSACTION_PREFIX + transaction_id


def message_digest(connection_id: str, unique_id: str, frame: str) -> str:
    """The key of one frame (see the module docstring): 24 hex digits of SHA-256 (96 bits)."""
    data = f"{len(connection_id)}:{connection_id}{len(unique_id)}:{unique_id}{frame}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:24]


def content_digest(*parts: object) -> str:
    """A digest of a record's identifying content (a 1.6 transaction start: connector, id tag,
    meter start, timestamp), for an item that must be created once whoever sends it again."""
    data = "\x1f".join(repr(part) for part in parts).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:24]


def meter_values_sk(digest: str) -> str:
    return METER_VALUES_PREFIX + digest


def event_sk(kind: str, digest: str) -> str:
    return f"{EVENT_PREFIX}{kind}#{digest}"


def event_prefix(kind: str | None = None) -> str:
    return EVENT_PREFIX if kind is None else f"{EVENT_PREFIX}{kind}#"


def message_sk(digest: str) -> str:
    return "MSG#" + digest


def connection_sk(connection_id: str) -> str:
    return CONNECTION_PREFIX + connection_id


def transaction_start_sk(digest: str) -> str:
    return "TXSTART#" + digest


def map_sk(name: str) -> str:
    return "MAP#" + name


def call_sk(unique_id: str) -> str:
    return CALL_PREFIX + unique_id


def reservation_sk(reservation_id: int) -> str:
    """Zero-padded, so that the sort key orders reservations by id (OCPP ids are 32-bit integers)."""
    return f"{RESERVATION_PREFIX}{reservation_id:010d}"


def reservation_pointer_pk(reservation_id: int) -> str:
    return f"RESERVATION#{reservation_id}"


def site_pk(site_id: str) -> str:
    return "SITE#" + site_id


def site_key(site_id: str) -> dict[str, str]:
    return {PK: site_pk(site_id), SK: SITE_SK}


def membership_key(charge_point_id: str) -> dict[str, str]:
    """The item that says which site the charger belongs to (one GetItem: ``site_of``)."""
    return {PK: charger_pk(charge_point_id), SK: MEMBERSHIP_SK}


def id_tag_pk(id_tag: str) -> str:
    return "IDTAG#" + id_tag


def outbox_sk(slot: str) -> str:
    return OUTBOX_PREFIX + slot


def outbox_list_sk(charge_point_id: str, slot: str) -> str:
    return f"{charge_point_id}#{slot}"


def busy_list_sk(charge_point_id: str, until_ms: int) -> str:
    """Sorted by the lock's end: a query up to ``now`` finds the overdue calls."""
    return f"{until_ms:015d}#{charge_point_id}"


def profile_sk(profile_key: str) -> str:
    return PROFILE_PREFIX + profile_key


def composite_sk(label: str) -> str:
    return COMPOSITE_PREFIX + label


def certificate_sk(serial: str) -> str:
    return CERTIFICATE_PREFIX + serial


def certificate_list_sk(not_after_ms: int, charge_point_id: str, serial: str) -> str:
    """Sorted by the certificate's end: a query up to a date finds those expiring before it."""
    return f"{not_after_ms:015d}#{charge_point_id}#{serial}"


def upload_sk(upload_id: str) -> str:
    return UPLOAD_PREFIX + upload_id


def upload_pointer_key(upload_id: str) -> dict[str, str]:
    """The item that finds an upload request by its id alone (the token of its URL)."""
    return {PK: UPLOAD_PREFIX + upload_id, SK: UPLOAD_POINTER_SK}


def file_sk(file_id: str) -> str:
    return FILE_PREFIX + file_id


def firmware_key(firmware_id: str) -> dict[str, str]:
    return {PK: "FIRMWARE#" + firmware_id, SK: FIRMWARE_SK}
