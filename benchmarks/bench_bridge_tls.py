"""Memory per connected charger when every MQTT session runs over TLS, next to plain TCP (issue 12).

``python -m benchmarks.bench_bridge_tls [--chargers 1000] [--verbose]``

On AWS each charger's MQTT session is a TLS connection to IoT Core; locally it is plain TCP to
mosquitto, which hides the cost of a TLS session per charger. Here:

* a throwaway CA, a server certificate for 127.0.0.1 and a client certificate are generated with
  ``cryptography`` in a temporary directory (nothing is kept);
* a private mosquitto gets two listeners: plain (for the responder of ``bench_bridge``) and TLS
  (for the bridge, which connects with ``BRIDGE_MQTT_AUTH=x509``: mutual TLS, as with an IoT
  Core device certificate);
* the bridge runs as ``python -m fargate_bridge``; RSS per charger = (RSS with N chargers
  connected, each having done one round trip - RSS idle) / N, once over TLS and once over plain
  TCP, each in a fresh bridge process.

``chargers_per_task`` is derived for a 2 GiB Fargate task (``chargers_per_task_4gib`` for 4 GiB):
70 % of the task memory (30 % headroom for the runtime, reply buffers of slow sockets and the
garbage collector's peaks) minus the idle RSS, divided by the TLS figure. Memory only: CPU (TLS
handshakes during a reconnection storm) may bind first, see docs/bridge.md.

Prints one line: ``bench bridge-tls: chargers=<n> rss_per_charger_kb=<x>
plain_rss_per_charger_kb=<y> chargers_per_task=<k> chargers_per_task_4gib=<k4> idle_rss_mb=<m>``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import ipaddress
import os
import sys
import tempfile
from pathlib import Path

import psutil
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from local_stack.ports import free_port

from .bench_bridge import (
    HOST,
    _BenchBroker,
    _bridge_process,
    _close_all,
    _health_ok,
    _log,
    _open_clients,
    _raise_fd_limit,
    _subprocess,
    _warm_up,
)

HEADROOM = 0.30
GIB = 1024**3


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # certificate + CRL sign
        builder = builder.add_extension(usage, critical=True)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)  # digital signature
        builder = builder.add_extension(usage, critical=True)
        purpose = x509.ExtendedKeyUsageOID.SERVER_AUTH if ip is not None else x509.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    if ip is not None:
        # Both forms: TLS stacks differ on whether they match an IP literal against IP or DNS names.
        names = [x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName(ip), x509.DNSName("localhost")]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> dict[str, Path]:
    """A throwaway CA with a server certificate for 127.0.0.1 and a client certificate (PEM files)."""
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("bench CA", ca_key, None, ca_key, ca=True)
    server = _cert(HOST, server_key, ca.subject, ca_key, ip=HOST)
    client = _cert("bench-bridge", client_key, ca.subject, ca_key)
    files = {
        "ca": (directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "server_cert": (directory / "server.pem", server.public_bytes(serialization.Encoding.PEM)),
        "server_key": (directory / "server.key", _pem_key(server_key)),
        "client_cert": (directory / "client.pem", client.public_bytes(serialization.Encoding.PEM)),
        "client_key": (directory / "client.key", _pem_key(client_key)),
    }
    for path, data in files.values():
        path.write_bytes(data)
        path.chmod(0o644)  # mosquitto started as root reads them as its own user
    directory.chmod(0o755)
    return {name: path for name, (path, _) in files.items()}


class _TlsBroker(_BenchBroker):
    """The bench broker with a second listener, TLS, on ``tls_port``."""

    def __init__(self, pki: dict[str, Path]):
        super().__init__(max_connections=-1)
        self.pki = pki
        self.tls_port = free_port(HOST)

    def _write_config(self) -> Path:
        config = super()._write_config()
        with open(config, "a") as extra:
            extra.write(
                f"listener {self.tls_port} {HOST}\n"
                f"cafile {self.pki['ca']}\ncertfile {self.pki['server_cert']}\nkeyfile {self.pki['server_key']}\n"
                "require_certificate true\n"  # mutual TLS, as IoT Core with a device certificate
            )
        return config


async def _rss_per_charger(port: int, pid: int, chargers: int, verbose: bool, label: str) -> tuple[float, int]:
    if not await _health_ok(port, 20):
        raise RuntimeError("bridge did not report a reachable broker")
    bridge = psutil.Process(pid)
    await asyncio.sleep(1.0)
    idle = bridge.memory_info().rss
    clients = await _open_clients(f"ws://{HOST}:{port}/ocpp", chargers)
    try:
        await _warm_up(clients, 120.0)
        await asyncio.sleep(1.0)
        connected = bridge.memory_info().rss
    finally:
        await _close_all(clients)
    _log(verbose, f"{label}: rss idle={idle / 2**20:.1f} MiB connected={connected / 2**20:.1f} MiB")
    return (connected - idle) / chargers / 1024, idle


def _measure(broker: _TlsBroker, chargers: int, tls: bool, verbose: bool) -> tuple[float, int]:
    port = free_port(HOST)
    overrides: dict[str, str | None] = {"BRIDGE_MQTT_CONNECT_BURST": str(chargers)}
    if tls:
        overrides.update(
            {
                "BRIDGE_MQTT_AUTH": "x509",
                "BRIDGE_MQTT_PORT": str(broker.tls_port),
                "BRIDGE_IOT_ENDPOINT": HOST,
                "BRIDGE_X509_CERT": str(broker.pki["client_cert"]),
                "BRIDGE_X509_KEY": str(broker.pki["client_key"]),
                "BRIDGE_X509_CA": str(broker.pki["ca"]),
                "BRIDGE_UNKNOWN_CHARGERS": "accept",
                "AWS_REGION": "us-east-1",
            }
        )
    with _bridge_process(port, broker.port, chargers, env_overrides=overrides) as proc:
        return asyncio.run(_rss_per_charger(port, proc.pid, chargers, verbose, "tls" if tls else "plain"))


def chargers_per_task(task_bytes: int, idle_rss: int, per_charger_kb: float) -> int:
    usable = task_bytes * (1 - HEADROOM) - idle_rss
    return max(0, int(usable / (per_charger_kb * 1024))) if per_charger_kb > 0 else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bridge_tls", description=__doc__.split("\n")[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--verbose", action="store_true", help="details on stderr")
    args = parser.parse_args(argv)
    if not 1 <= args.chargers <= 9000:
        parser.error("--chargers must be 1..9000")
    _raise_fd_limit()
    root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        pki = make_pki(Path(directory))
        with _TlsBroker(pki) as broker:
            responder = ["-m", "benchmarks.bench_bridge", "--role", "responder", "--port", str(broker.port)]
            with _subprocess(responder):
                tls_kb, idle = _measure(broker, args.chargers, True, args.verbose)
                plain_kb, _ = _measure(broker, args.chargers, False, args.verbose)
    print(
        f"bench bridge-tls: chargers={args.chargers} rss_per_charger_kb={tls_kb:.1f} "
        f"plain_rss_per_charger_kb={plain_kb:.1f} chargers_per_task={chargers_per_task(2 * GIB, idle, tls_kb)} "
        f"chargers_per_task_4gib={chargers_per_task(4 * GIB, idle, tls_kb)} idle_rss_mb={idle / 2**20:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
