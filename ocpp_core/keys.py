"""Storage layout: the keys of the single DynamoDB table (DESIGN §6).

Pure string functions shared by every adapter (processor, operator API, bridge registry
reads) so that the layout is written down once. Partition key ``pk``, sort key ``sk``,
TTL attribute ``expiresAt`` (epoch seconds; DynamoDB deletes lazily, so readers check it).

| item | pk | sk |
|---|---|---|
| charger (registry, presence, boot) | ``CP#<id>`` | ``CHARGER`` |
| connector / EVSE status | ``CP#<id>`` | ``STATUS#<label>`` (``C1``, ``E1C2``, ``E1``) |
| transaction | ``CP#<id>`` | ``TX#<transactionId>`` |
| meter values sample | ``CP#<id>`` | ``MV#<receivedAt>#<uniqueId>`` |
| event record (reports, security events...) | ``CP#<id>`` | ``EVT#<kind>#<receivedAt>#<uniqueId>`` |
| processed message (idempotency) | ``CP#<id>`` | ``MSG#<uniqueId>`` (a 2.1 SEND: ``MSG#SEND#<uniqueId>``) |
| CSMS call | ``CP#<id>`` | ``CALL#<uniqueId>`` |
| outstanding CSMS call lock | ``CP#<id>`` | ``OUTSTANDING`` |

Index ``list`` (keys only, sparse): ``listPk`` = ``CHARGERS``, ``listSk`` = charger id, on charger items.
| id token | ``IDTAG#<idTag>`` | ``IDTAG`` |
| transaction id counter | ``COUNTER`` | ``TRANSACTION`` |
"""

from __future__ import annotations

PK = "pk"
SK = "sk"
TTL_ATTRIBUTE = "expiresAt"

CHARGER_SK = "CHARGER"

#: The sparse index that lists chargers without a table scan: only charger items carry its keys
#: (``LIST_PK`` = ``CHARGERS``, ``LIST_SK`` = the charger id). Keys only: the many updates of
#: a charger's other attributes (last seen on every message) never write to it.
LIST_INDEX = "list"
LIST_PK = "listPk"
LIST_SK = "listSk"
CHARGERS_LIST = "CHARGERS"
OUTSTANDING_SK = "OUTSTANDING"
ID_TAG_SK = "IDTAG"
COUNTER_PK = "COUNTER"
TRANSACTION_COUNTER_SK = "TRANSACTION"


def charger_pk(charge_point_id: str) -> str:
    return "CP#" + charge_point_id


def charger_key(charge_point_id: str) -> dict[str, str]:
    return {PK: charger_pk(charge_point_id), SK: CHARGER_SK}


def status_sk(label: str) -> str:
    """``label`` names the connector: ``C1`` (1.6 connector 1), ``E1C2`` (2.x EVSE 1 connector 2)."""
    return "STATUS#" + label


def transaction_sk(transaction_id: str) -> str:
    return "TX#" + transaction_id


def meter_values_sk(received_at_ms: int, unique_id: str) -> str:
    return f"MV#{received_at_ms:015d}#{unique_id}"


def event_sk(kind: str, received_at_ms: int, unique_id: str) -> str:
    return f"EVT#{kind}#{received_at_ms:015d}#{unique_id}"


def message_sk(unique_id: str) -> str:
    return "MSG#" + unique_id


def call_sk(unique_id: str) -> str:
    return "CALL#" + unique_id


def id_tag_pk(id_tag: str) -> str:
    return "IDTAG#" + id_tag
