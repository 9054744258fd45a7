"""The two adapters agree where they once differed: any map key (even ``pk``), and an update with nothing to write."""

from __future__ import annotations

from ocpp_core.ports import ItemUpdate, StateStore


def test_a_charger_map_keeps_keys_named_like_the_tables_key_attributes(store: StateStore) -> None:
    # A 1.6 GetConfiguration result may hold any CiString50 key; DynamoStore drops pk/sk/listPk/listSk.
    entries = {"pk": {"value": "1", "readonly": False}, "sk": {"value": "2", "readonly": True}}
    store.set_charger_map_entries("CP1", "configuration", entries)
    assert store.get_charger_map("CP1", "configuration") == entries


def test_an_update_with_nothing_to_write_behaves_the_same_on_every_store(store: StateStore) -> None:
    # InMemoryStore creates {"s": []}; DynamoStore sends an empty UpdateExpression -> StoreError.
    assert store.update_transaction("CP1", "7", ItemUpdate(add_to_set={"s": frozenset()}))
