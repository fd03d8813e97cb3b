"""MQTT over TLS with client certificates, against a real Mosquitto."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.errors import TransportError
from core.messages import Reading
from core.settings import MqttSettings, TlsSettings
from edge_agent.publisher import DevicePublisher
from mamori.broker import MosquittoBroker


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(directory: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1 and a device certificate."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=mamori-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        cwd=directory,
    )
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, extra in (("server", ["-extfile", "san.ext"]), ("dev-tls", [])):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={name}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=directory,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            f"{name}.crt",
            *extra,
            cwd=directory,
        )


def test_device_connects_with_its_certificate_and_others_are_refused(tmp_path: Path) -> None:
    _pki(tmp_path)
    broker = MosquittoBroker(
        tmp_path / "broker",
        extra_config=(
            f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
            f"keyfile {tmp_path / 'server.key'}\n"
            "require_certificate true\nuse_identity_as_username true\n"
        ),
    )
    info = broker.start()
    try:
        good = MqttSettings(
            host="127.0.0.1",
            port=info.port,
            tls=TlsSettings(
                ca_file=tmp_path / "ca.crt",
                cert_file=tmp_path / "dev-tls.crt",
                key_file=tmp_path / "dev-tls.key",
            ),
        )
        device = DevicePublisher(good, "site1", "dev-tls")
        device.start()
        device.publish_batch([Reading(metric="battery_v", ts=datetime.now(UTC), value=12.5)])
        device.stop()

        no_cert = good.model_copy(update={"tls": TlsSettings(ca_file=tmp_path / "ca.crt")})
        refused = DevicePublisher(no_cert, "site1", "dev-tls")
        with pytest.raises(TransportError):
            refused.start(timeout_s=3)

        plain = good.model_copy(update={"tls": None})
        with pytest.raises(TransportError):
            DevicePublisher(plain, "site1", "dev-tls").start(timeout_s=3)
    finally:
        broker.stop()
