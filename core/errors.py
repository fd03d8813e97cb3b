"""The one error tree of Mamori.

Third-party errors are translated at each boundary (``raise ... from exc``) so callers
catch ours, never psycopg's or paho's::

    MamoriError
    ├── ConfigError          a setting or a config file is wrong; nothing was started
    ├── PayloadError         bytes from the outside are not a valid message; dead-letter them
    │   └── TopicError       the topic itself does not follow the protocol
    ├── StoreError           the database refused or could not be reached
    │   └── MigrationError   a migration failed or the recorded history does not match
    ├── TransportError       the broker could not be reached or refused us
    └── ServiceError         a long-running service could not start or stop cleanly
"""

from __future__ import annotations

from enum import StrEnum


class MamoriError(Exception):
    """Root of every error Mamori raises on purpose."""


class ConfigError(MamoriError):
    """A setting or a config file is invalid; the message says which and why."""


class DeadLetterReason(StrEnum):
    """Why a message went to the dead-letter table: a closed set, so it can be counted."""

    UNDECODABLE = "undecodable"
    INVALID = "invalid"
    OVERSIZED = "oversized"
    UNKNOWN_DEVICE = "unknown_device"
    OUT_OF_RANGE = "out_of_range"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"


class PayloadError(MamoriError):
    """Bytes from outside that are not a valid message. Dead-letter them, never crash."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class TopicError(PayloadError):
    """A topic that does not follow ``docs/protocol.md``."""

    def __init__(self, detail: str) -> None:
        super().__init__(DeadLetterReason.BAD_TOPIC, detail)


class StoreError(MamoriError):
    """The database refused an operation or could not be reached."""


class MigrationError(StoreError):
    """A migration failed, or the applied history differs from the files shipped."""


class TransportError(MamoriError):
    """The MQTT broker could not be reached or refused the connection."""


class ServiceError(MamoriError):
    """A service (embedded database, broker, worker) failed to start or stop."""
