"""Builds paho-mqtt clients the same way for every service and device.

Credentials, TLS, protocol version, persistent sessions and the last will are decided
here from :class:`core.settings.MqttSettings`; nothing connects until the caller says so.
paho-mqtt is imported by this module only, and only devices and servers (the ``edge`` and
``server`` extras) import it.
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import dataclass
from typing import Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.errors import TransportError
from core.settings import MqttSettings


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
