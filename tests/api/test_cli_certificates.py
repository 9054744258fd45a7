"""``csms certificates list|expiring|revoke`` and ``csms ca`` against the operator API, with the
local development CA."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambdas import runtime
from lambdas.certificates import local_ca
from lambdas.runtime import Dependencies
from local_stack.api_server import ApiServer, start_api_server
from local_stack.ports import free_port

from .support import connect, from_charger, make_deps, run_cli
from .test_certificates import make_csr


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Dependencies]:
    injected = make_deps()
    injected.ca = local_ca.load_or_create(tmp_path)
    runtime.configure(injected)
    yield injected
    runtime.configure(None)


@pytest.fixture
def server(deps: Dependencies) -> Iterator[ApiServer]:
    started = start_api_server("127.0.0.1", free_port())
    yield started
    started.stop()


def run(server: ApiServer, *args: str) -> tuple[int, str, str]:
    return run_cli(server.url, *args)


def test_list_expiring_revoke_and_the_ca(server: ApiServer, deps: Dependencies) -> None:
    deps.store.update_charger("CP1", {"registered": True})
    connect(deps, "CP1", "ocpp1.6")
    from_charger(deps, "CP1", "ocpp1.6", [2, "s1", "SignCertificate", {"csr": make_csr("CP1")}])
    code, out, err = run(server, "certificates", "list", "CP1")
    assert code == 0, err
    header, row = out.strip().splitlines()[:2]
    assert header.split()[:3] == ["SERIAL", "CHARGER", "STATUS"]
    serial = row.split()[0]
    assert row.split()[1:3] == ["CP1", "valid"]
    code, out, _ = run(server, "certificates", "expiring", "--days", "400", "--json")
    assert [c["serial"] for c in json.loads(out)["certificates"]] == [serial]
    code, out, err = run(server, "certificates", "revoke", "CP1", serial, "--reason", "lost", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "revoked"
    code, _, err = run(server, "certificates", "revoke", "CP1", serial)
    assert code == 1 and "already revoked" in err
    code, out, _ = run(server, "ca")
    assert code == 0 and out.startswith("-----BEGIN CERTIFICATE-----")
