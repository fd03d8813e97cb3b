"""Turns one MQTT message into rows to store, or a dead letter. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from core.errors import DeadLetterReason, PayloadError
from core.messages import DeviceStatus, ReadingBatch, decode
from core.metrics import metric_spec
from core.topics import ParsedTopic, TopicKind, Topics
from store.readings import ReadingRow


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int
    future_tolerance: timedelta
    past_limit: timedelta


@dataclass(slots=True)
class Accepted:
    """What one good message contributes to a batch."""

    device: str
    seq: int | None = None
    rows: list[ReadingRow] = field(default_factory=list)
    status: DeviceStatus | None = None


def accept(
    topics: Topics,
    topic: str,
    payload: bytes,
    *,
    devices: Mapping[str, str],
    limits: Limits,
    now: datetime,
) -> Accepted:
    """Validate a message against the protocol and the registry.

    A message is stored whole or dead-lettered whole: one bad reading sends the entire
    message, raw bytes and all, to the dead-letter table, so re-driving it after a fix
    never leaves half of it behind.
    """
    parsed = topics.parse(topic)
    if parsed.kind is TopicKind.READINGS:
        batch = decode(ReadingBatch, payload, max_bytes=limits.max_payload_bytes)
        check_sender(parsed, batch.device, devices)
        return Accepted(batch.device, batch.seq, _rows(batch, limits, now))
    if parsed.kind is TopicKind.STATUS:
        status = decode(DeviceStatus, payload, max_bytes=limits.max_payload_bytes)
        check_sender(parsed, status.device, devices)
        return Accepted(status.device, status=status)
    raise PayloadError(DeadLetterReason.BAD_TOPIC, f"accept() does not take {parsed.kind} messages")


def check_sender(parsed: ParsedTopic, device: str, devices: Mapping[str, str]) -> None:
    """The device is registered, under the topic's site, and is who the topic says."""
    if device != parsed.device:
        raise PayloadError(
            DeadLetterReason.TOPIC_MISMATCH,
            f"payload says device {device!r} but the topic says {parsed.device!r}",
        )
    site = devices.get(device)
    if site is None:
        raise PayloadError(DeadLetterReason.UNKNOWN_DEVICE, f"device {device!r} is not registered")
    if site != parsed.site:
        raise PayloadError(
            DeadLetterReason.TOPIC_MISMATCH,
            f"device {device!r} belongs to site {site!r}, not {parsed.site!r}",
        )


def _rows(batch: ReadingBatch, limits: Limits, now: datetime) -> list[ReadingRow]:
    # The hot path of ingest: one pass builds the rows, then whole-batch checks (the
    # time span, each metric's value span) decide; a reading is looked at one by one
    # only to name the first offender of a message that is going to be dead-lettered.
    earliest, latest = now - limits.past_limit, now + limits.future_tolerance
    device, seq = batch.device, batch.seq
    rows: list[ReadingRow] = [(r.ts, device, r.metric, r.value, seq) for r in batch.readings]
    if not rows:
        return rows
    stamps = [row[0] for row in rows]
    if min(stamps) < earliest or max(stamps) > latest:
        index = next(n for n, ts in enumerate(stamps) if not earliest <= ts <= latest)
        raise PayloadError(
            DeadLetterReason.OUT_OF_RANGE,
            f"readings[{index}].ts {stamps[index].isoformat()} is outside "
            f"[{earliest.isoformat()}, {latest.isoformat()}]",
        )
    values: dict[str, list[float]] = {}
    for row in rows:
        values.setdefault(row[2], []).append(row[3])
    for metric, seen in values.items():
        spec = metric_spec(metric)
        if spec is None or (spec.minimum <= min(seen) and max(seen) <= spec.maximum):
            continue
        index = next(
            n for n, row in enumerate(rows) if row[2] == metric and not spec.in_range(row[3])
        )
        raise PayloadError(
            DeadLetterReason.OUT_OF_RANGE,
            f"readings[{index}] {metric}={rows[index][3]} is outside "
            f"[{spec.minimum}, {spec.maximum}] {spec.unit}",
        )
    return rows
