"""One device's MQTT connection: birth and will, numbered batches, QoS 1.

``publish_batch`` returns only after the broker acknowledged the message (PUBACK), which
is the moment a device may forget it. The durable outbox that survives power loss builds
on this (edge agent issue); this class is the transport.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import UTC, datetime

import paho.mqtt.client as paho

from core.errors import TransportError
from core.messages import DeviceState, DeviceStatus, Reading, ReadingBatch, encode
from core.mqtt import Will, build_client, connect, reason_is_failure
from core.settings import MqttSettings
from core.topics import Topics

_log = logging.getLogger(__name__)


class DevicePublisher:
    def __init__(
        self,
        mqtt: MqttSettings,
        site: str,
        device: str,
        *,
        firmware: str = "mamori-edge/0.1",
        first_seq: int = 0,
    ) -> None:
        self.site = site
        self.device = device
        self.firmware = firmware
        self.next_seq = first_seq
        self.published = 0
        self._mqtt = mqtt
        self._topics = Topics(mqtt.topic_prefix)
        self._connected = threading.Event()
        self._subscriptions: list[str] = []
        self._stopped = False
        will = DeviceStatus(
            device=device, state=DeviceState.OFFLINE, ts=datetime.now(UTC), reason="connection lost"
        )
        self._client = build_client(
            mqtt,
            f"dev-{site}-{device}"[:64],
            will=Will(self._topics.status(site, device), encode(will)),
        )
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect

    @property
    def readings_topic(self) -> str:
        return self._topics.readings(self.site, self.device)

    @property
    def device_root(self) -> str:
        return self._topics.device_root(self.site, self.device)

    @property
    def client(self) -> paho.Client:
        return self._client

    def add_subscription(self, topic_filter: str) -> None:
        """Subscribe now and again after every reconnect."""
        self._subscriptions.append(topic_filter)
        if self._connected.is_set():
            self._client.subscribe(topic_filter, qos=1)

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def start(self, timeout_s: float = 10.0, *, wait: bool = True) -> None:
        """Connect; with ``wait=False`` return at once and let paho keep trying."""
        connect(self._client, self._mqtt, background=not wait)
        self._client.loop_start()
        if wait and not self._connected.wait(timeout_s):
            self._client.loop_stop()
            raise TransportError(
                f"device {self.device} not connected to {self._mqtt.url()} in {timeout_s}s"
            )

    def stop(self) -> None:
        """Say goodbye on purpose: a retained ``offline`` status, then disconnect.

        Safe to call twice; without a connection the broker's will says it instead."""
        if self._stopped:
            return
        self._stopped = True
        if not self._connected.is_set():
            self._client.disconnect()
            self._client.loop_stop()
            return
        bye = DeviceStatus(
            device=self.device, state=DeviceState.OFFLINE, ts=datetime.now(UTC), reason="shutdown"
        )
        info = self._client.publish(
            self._topics.status(self.site, self.device), encode(bye), qos=1, retain=True
        )
        with contextlib.suppress(RuntimeError, ValueError):  # the link went in between
            info.wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: paho.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if reason_is_failure(reason):
            _log.error("broker refused device %s: %s", self.device, reason)
            return
        birth = DeviceStatus(
            device=self.device,
            state=DeviceState.ONLINE,
            ts=datetime.now(UTC),
            firmware=self.firmware,
        )
        client.publish(
            self._topics.status(self.site, self.device), encode(birth), qos=1, retain=True
        )
        for topic_filter in self._subscriptions:
            client.subscribe(topic_filter, qos=1)
        self._connected.set()

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        self._connected.clear()

    def publish_batch(self, readings: list[Reading], timeout_s: float = 10.0) -> ReadingBatch:
        batch = ReadingBatch(
            device=self.device, seq=self.next_seq, sent_at=datetime.now(UTC), readings=readings
        )
        self.publish_raw(encode(batch), timeout_s)
        self.next_seq += 1
        return batch

    def publish_raw(self, payload: bytes, timeout_s: float = 10.0) -> None:
        """Publish bytes on this device's readings topic and wait for the broker's PUBACK."""
        self.publish_to(self.readings_topic, payload, timeout_s)

    def publish_to(self, topic: str, payload: bytes, timeout_s: float = 10.0) -> None:
        """Publish with QoS 1 and return once the broker acknowledged (PUBACK)."""
        info = self._client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise TransportError(f"device {self.device} could not publish: {exc}") from exc
        if not info.is_published():
            raise TransportError(f"device {self.device}: no PUBACK within {timeout_s}s")
        if topic == self.readings_topic:
            self.published += 1
