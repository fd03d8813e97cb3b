"""Versioned message models: what travels over MQTT, validated at every boundary.

Every payload carries ``v`` (the protocol version) and the sending device's id. A device
numbers its messages with a per-device ``seq`` that only grows, so the store can drop
redelivered duplicates and the alert engine can see gaps. ``docs/protocol.md`` has
examples of each message.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from core.errors import DeadLetterReason, PayloadError

PROTOCOL_VERSION: Final = 1

#: Ids of sites, assets, devices and photos: they appear in topics, URLs and file names,
#: so they are restricted to characters that are safe in all three.
Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
MetricName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]

#: Readings per message. A device batches readings to save radio time; this bound keeps
#: one message's worth of work small for ingest.
MAX_READINGS_PER_BATCH: Final = 5000


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Reading(_Message):
    """One measured value at one instant."""

    metric: MetricName
    ts: AwareDatetime
    value: float


class ReadingBatch(_Message):
    """Readings from one device, sent as one MQTT message on ``.../readings``."""

    v: Literal[1] = PROTOCOL_VERSION
    device: Ident
    seq: int = Field(ge=0, description="per-device message number; grows by one per message")
    sent_at: AwareDatetime
    readings: list[Reading] = Field(min_length=1, max_length=MAX_READINGS_PER_BATCH)


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class DeviceStatus(_Message):
    """Birth (retained, ``online``) and last will (``offline``) on ``.../status``."""

    v: Literal[1] = PROTOCOL_VERSION
    device: Ident
    state: DeviceState
    ts: AwareDatetime = Field(description="when the message was composed (for a will: at connect)")
    firmware: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=200)


class GeoPoint(_Message):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    alt_m: float | None = Field(default=None, description="altitude above ground, metres")


class CameraInfo(_Message):
    make: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=64)
    focal_length_mm: float | None = Field(default=None, gt=0, le=2000)
    sensor_width_mm: float | None = Field(default=None, gt=0, le=100)
    image_width_px: int | None = Field(default=None, gt=0, le=100_000)
    image_height_px: int | None = Field(default=None, gt=0, le=100_000)


class PhotoManifest(_Message):
    """Announces a photo sent in chunks on ``.../photos/{photo_id}/chunks/{index}``.

    Each chunk is raw bytes; ``chunk_sha256[i]`` lets ingest reject a corrupted chunk and
    ask only for it again, and ``sha256`` checks the reassembled whole.
    """

    v: Literal[1] = PROTOCOL_VERSION
    device: Ident
    photo_id: Ident
    asset: Ident | None = None
    filename: str = Field(min_length=1, max_length=200, pattern=r"^[^/\\\x00]+$")
    content_type: Literal["image/jpeg", "image/png"]
    size_bytes: int = Field(gt=0)
    sha256: Sha256Hex
    chunk_size: int = Field(gt=0, le=8 * 1024 * 1024)
    chunk_sha256: list[Sha256Hex] = Field(min_length=1, max_length=10_000)
    captured_at: AwareDatetime | None = None
    location: GeoPoint | None = None
    camera: CameraInfo | None = None

    @property
    def chunk_count(self) -> int:
        return len(self.chunk_sha256)

    @model_validator(mode="after")
    def _chunks_cover_the_photo(self) -> PhotoManifest:
        expected = -(-self.size_bytes // self.chunk_size)
        if self.chunk_count != expected:
            raise ValueError(
                f"{self.size_bytes} bytes in chunks of {self.chunk_size} make {expected} chunks, "
                f"but chunk_sha256 lists {self.chunk_count}"
            )
        return self


class PhotoAck(_Message):
    """Ingest → device on ``.../photos/{photo_id}/ack``: which chunks are safely stored.

    Sent after every manifest (so a device that reconnects learns what to resend) and
    when the photo is complete. ``image_id`` is set once the photo is in the store.
    """

    v: Literal[1] = PROTOCOL_VERSION
    photo_id: Ident
    received: list[int] = Field(default_factory=list)
    complete: bool = False
    image_id: Ident | None = None
    error: str | None = Field(default=None, max_length=500)


_M = TypeVar("_M", bound=_Message)

_RANGE_ERRORS: Final = frozenset({"finite_number"})


def decode(model: type[_M], raw: bytes, *, max_bytes: int) -> _M:
    """Parse and validate ``raw`` as ``model``; every failure is a :class:`PayloadError`.

    The reason distinguishes what an operator would fix differently: bytes that are not
    JSON at all (``undecodable``), a message that breaks the schema (``invalid``), one too
    large to consider (``oversized``) and a value that is not a real number
    (``out_of_range``).
    """
    if len(raw) > max_bytes:
        raise PayloadError(
            DeadLetterReason.OVERSIZED, f"{len(raw)} bytes exceeds the limit of {max_bytes}"
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if any(err["type"] == "json_invalid" for err in errors):
            raise PayloadError(DeadLetterReason.UNDECODABLE, _summarise(errors)) from exc
        if any(err["type"] in _RANGE_ERRORS for err in errors):
            raise PayloadError(DeadLetterReason.OUT_OF_RANGE, _summarise(errors)) from exc
        raise PayloadError(DeadLetterReason.INVALID, _summarise(errors)) from exc


def encode(message: _Message) -> bytes:
    """Serialise a message the way devices send it (compact JSON, UTF-8)."""
    return message.model_dump_json(exclude_none=True).encode()


def _summarise(errors: list[ErrorDetails]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{loc}: {err['msg']}")
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


__all__ = [
    "MAX_READINGS_PER_BATCH",
    "PROTOCOL_VERSION",
    "CameraInfo",
    "DeviceState",
    "DeviceStatus",
    "GeoPoint",
    "Ident",
    "PhotoAck",
    "PhotoManifest",
    "Reading",
    "ReadingBatch",
    "decode",
    "encode",
]
