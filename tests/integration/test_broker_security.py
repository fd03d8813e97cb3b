"""Per-device credentials and ACLs on a real Mosquitto started with our generated files."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.topics import Topics
from mamori.broker import MosquittoBroker
from mamori.broker_auth import PasswordFile, hash_password, mosquitto_auth_config, render_acl

TOPICS = Topics("mamori")
DEVICES = {"dev-a": "site1", "dev-b": "site1"}


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, str]]]:
    work = tmp_path_factory.mktemp("secure-broker")
    passwords = {name: f"pw-{name}-0123456789" for name in [*DEVICES, "mamori-ingest"]}
    pw_file = PasswordFile(work / "passwd")
    for user, password in passwords.items():
        pw_file.set(user, password)
    pw_file.save()
    acl = work / "acl"
    acl.write_text(render_acl(TOPICS, DEVICES))
    broker = MosquittoBroker(work, auth=mosquitto_auth_config(work / "passwd", acl))
    info = broker.start()
    yield info.port, passwords
    broker.stop()


def _client(port: int, user: str | None, password: str | None) -> tuple[paho.Client, object]:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        protocol=paho.MQTTv5,
        client_id=f"test-{user}-{threading.get_ident()}",
    )
    if user:
        client.username_pw_set(user, password)
    result: queue.Queue[object] = queue.Queue()
    client.on_connect = lambda _c, _u, _f, reason, _p: result.put(reason)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client, result.get(timeout=10)


def test_hash_matches_mosquitto_format() -> None:
    hashed = hash_password("secret", iterations=101, salt=bytes(range(12)))
    assert hashed.startswith("$7$101$AAECAwQFBgcICQoL$")


def test_anonymous_and_wrong_passwords_are_refused(secured: tuple[int, dict[str, str]]) -> None:
    port, _ = secured
    for user, password in ((None, None), ("dev-a", "wrong"), ("nobody", "x")):
        client, reason = _client(port, user, password)
        client.loop_stop()
        assert getattr(reason, "is_failure", True), f"{user} was let in"


def _subscribe(client: paho.Client, topic: str) -> tuple[int, queue.Queue[paho.MQTTMessage]]:
    granted: queue.Queue[int] = queue.Queue()
    inbox: queue.Queue[paho.MQTTMessage] = queue.Queue()
    client.on_subscribe = lambda _c, _u, _m, codes, _p: granted.put(codes[0].value)
    client.on_message = lambda _c, _u, msg: inbox.put(msg)
    client.subscribe(topic, qos=1)
    return granted.get(timeout=10), inbox


def _puback_reason(client: paho.Client, topic: str, payload: bytes) -> int:
    reasons: queue.Queue[int] = queue.Queue()
    client.on_publish = lambda _c, _u, _mid, reason, _p: reasons.put(reason.value)
    client.publish(topic, payload, qos=1, properties=Properties(PacketTypes.PUBLISH))  # type: ignore[no-untyped-call]
    return reasons.get(timeout=10)


def test_a_device_writes_only_its_own_topics(secured: tuple[int, dict[str, str]]) -> None:
    port, passwords = secured
    ingest, _ = _client(port, "mamori-ingest", passwords["mamori-ingest"])
    code, inbox = _subscribe(ingest, f"$share/ingest/{TOPICS.all_readings()}")
    assert code < 0x80
    device, reason = _client(port, "dev-a", passwords["dev-a"])
    assert not getattr(reason, "is_failure", True)
    try:
        assert _puback_reason(device, TOPICS.readings("site1", "dev-a"), b"own") == 0
        assert inbox.get(timeout=10).payload == b"own"
        # Another device's topic, another site's, and the alert topics are refused.
        for topic in (
            TOPICS.readings("site1", "dev-b"),
            TOPICS.readings("site2", "dev-a"),
            TOPICS.alerts("site1", "bridge"),
        ):
            assert _puback_reason(device, topic, b"forged") == 0x87  # not authorised
        with pytest.raises(queue.Empty):
            inbox.get(timeout=1)
    finally:
        device.loop_stop()
        ingest.loop_stop()


def test_a_device_cannot_read_another_device(secured: tuple[int, dict[str, str]]) -> None:
    """Mosquitto may grant the subscription, but never delivers what the ACL forbids."""
    port, passwords = secured
    ingest, _ = _client(port, "mamori-ingest", passwords["mamori-ingest"])
    spy, _ = _client(port, "dev-a", passwords["dev-a"])
    other, _ = _client(port, "dev-b", passwords["dev-b"])
    try:
        _, foreign_acks = _subscribe(spy, f"{TOPICS.device_root('site1', 'dev-b')}/photos/+/ack")
        _, foreign_readings = _subscribe(spy, TOPICS.all_readings())
        _, own_acks = _subscribe(other, f"{TOPICS.device_root('site1', 'dev-b')}/photos/+/ack")
        assert _puback_reason(ingest, TOPICS.photo_ack("site1", "dev-b", "p1"), b"ack") == 0
        assert _puback_reason(other, TOPICS.readings("site1", "dev-b"), b"reading") == 0
        assert own_acks.get(timeout=10).payload == b"ack"  # the owner hears it...
        for inbox in (foreign_acks, foreign_readings):  # ...the other device hears nothing
            with pytest.raises(queue.Empty):
                inbox.get(timeout=1)
    finally:
        for client in (ingest, spy, other):
            client.loop_stop()


def test_password_file_round_trips(tmp_path: Path) -> None:
    pw = PasswordFile(tmp_path / "p")
    pw.set("dev-a", "x")
    pw.save()
    assert PasswordFile(tmp_path / "p").users() == ["dev-a"]
