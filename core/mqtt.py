"""Builds paho-mqtt clients the same way for every service and device, and the
acknowledge-after-commit subscriber that ingest and the alert engine share.

Credentials, TLS, protocol version, persistent sessions and the last will are decided
here from :class:`core.settings.MqttSettings`; nothing connects until the caller says so.
paho-mqtt is imported by this module only, and only devices and servers (the ``edge`` and
``server`` extras) import it.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from core.errors import TransportError
from core.settings import MqttSettings

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def build_client(
    settings: MqttSettings,
    client_id: str,
    *,
    will: Will | None = None,
    manual_ack: bool = False,
) -> paho.Client:
    """A configured, unconnected client. Call :func:`connect` next."""
    protocol = paho.MQTTv5 if settings.protocol == "5" else paho.MQTTv311
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        # 3.1.1: keep our queue while we are away; MQTT 5 says so at connect time.
        clean_session=False if protocol == paho.MQTTv311 else None,
        manual_ack=manual_ack,
        reconnect_on_failure=True,
    )
    if settings.username:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls is not None:
        context = ssl.create_default_context(cafile=str(settings.tls.ca_file))
        if settings.tls.cert_file and settings.tls.key_file:
            context.load_cert_chain(str(settings.tls.cert_file), str(settings.tls.key_file))
        client.tls_set_context(context)
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    # Exponential backoff (paho doubles the delay up to max_delay), jittered by starting
    # each client at a random 1-4 s, so a fleet that lost its broker does not come back
    # in one synchronised storm.
    client.reconnect_delay_set(min_delay=secrets.choice((1, 2, 3, 4)), max_delay=60)
    return client


def connect(
    client: paho.Client,
    settings: MqttSettings,
    *,
    receive_maximum: int | None = None,
    background: bool = False,
) -> None:
    """Connect (not yet looping). A refused or unreachable broker is a :class:`TransportError`.

    With ``background`` the first attempt happens in paho's loop thread, which keeps
    retrying with backoff: a device that boots before its network does comes up anyway.
    """
    properties: Properties | None = None
    clean_start: bool | Literal[3] = paho.MQTT_CLEAN_START_FIRST_ONLY
    if settings.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = settings.session_expiry_s
        if receive_maximum is not None:
            # The broker sends at most this many unacknowledged QoS 1 messages: the
            # backpressure that keeps memory bounded when the database is slow.
            properties.ReceiveMaximum = receive_maximum
        clean_start = False
    try:
        (client.connect_async if background else client.connect)(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=clean_start,
            properties=properties,
        )
    except (OSError, ssl.SSLError) as exc:
        raise TransportError(f"cannot reach MQTT broker {settings.url()}: {exc}") from exc


def reason_is_failure(reason_code: object) -> bool:
    """paho gives ``ReasonCode`` objects (v5) or ints; both compare to failure the same way."""
    is_failure = getattr(reason_code, "is_failure", None)
    if isinstance(is_failure, bool):
        return is_failure
    return bool(reason_code != 0)


@dataclass(frozen=True, slots=True)
class Inbound:
    """One message as a manual-ack subscriber received it."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    #: Which connection delivered it: only that connection may acknowledge it.
    generation: int
    received_at: datetime


class AckingSubscriber:
    """A persistent MQTT session whose messages are acknowledged only when the caller
    says so (after its commit), for ingest and the alert engine.

    Every message goes to ``deliver`` unacknowledged, from paho's network thread. The
    broker sends at most ``receive_maximum`` of them before an acknowledgement (MQTT 5),
    which is the services' backpressure. Each reconnect starts a new *generation*: a
    message from an earlier connection is not acknowledged (the broker resends it on
    the new one, and that copy is), so an acknowledgement can never name the wrong
    message. Anything not acknowledged when a process dies is redelivered.
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        filters: list[str],
        deliver: Callable[[Inbound], None],
        *,
        name: str,
        stopping: threading.Event,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.filters = filters
        self._deliver = deliver
        self._name = name
        self._stopping = stopping
        self._clock = clock
        self._generation = 0
        self._subscribed = threading.Event()
        self.client = build_client(settings, client_id, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect

    def start(self, *, receive_maximum: int, timeout_s: float) -> None:
        """Connect and wait for the broker to confirm every subscription."""
        connect(self.client, self.settings, receive_maximum=receive_maximum)
        self.client.loop_start()
        if not self._subscribed.wait(timeout_s):
            self.stop()
            raise TransportError(
                f"{self._name}: no subscription confirmed by {self.settings.url()} in {timeout_s}s"
            )

    def ack(self, message: Inbound) -> bool:
        """Acknowledge a message if the connection that delivered it is still ours."""
        if message.qos > 0 and message.generation == self._generation:
            self.client.ack(message.mid, message.qos)
            return True
        return False

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # paho's network thread ------------------------------------------------------------

    def _on_connect(
        self, client: paho.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if reason_is_failure(reason):
            _log.error("broker refused %s: %s", self._name, reason)
            return
        self._generation += 1
        client.subscribe([(f, 1) for f in self.filters])

    def _on_subscribe(
        self, _c: paho.Client, _u: object, _mid: int, reasons: list[ReasonCode], _p: Properties
    ) -> None:
        failed = [r for r in reasons if reason_is_failure(r)]
        if failed:
            _log.error("broker refused a subscription of %s: %s", self._name, failed)
            return
        self._subscribed.set()

    def _on_disconnect(
        self, _c: paho.Client, _u: object, _f: object, reason: object, _p: object
    ) -> None:
        if not self._stopping.is_set():
            _log.warning("%s lost the broker (%s); paho reconnects", self._name, reason)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        self._deliver(
            Inbound(
                msg.mid, msg.qos, msg.topic, bytes(msg.payload), self._generation, self._clock()
            )
        )
