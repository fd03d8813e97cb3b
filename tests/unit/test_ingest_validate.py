"""ingest.validate: from one message to rows or a dead-letter reason. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import DeadLetterReason, PayloadError
from core.messages import DeviceState, DeviceStatus, Reading, ReadingBatch, encode
from core.topics import Topics
from ingest.validate import Limits, accept

NOW = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)
TOPICS = Topics("mamori")
DEVICES = {"wl-1": "yamaguchi"}
LIMITS = Limits(
    max_payload_bytes=10_000, future_tolerance=timedelta(minutes=5), past_limit=timedelta(days=30)
)


def _payload(
    metric: str = "water_level_m", value: float = 2.0, ts: datetime = NOW, device: str = "wl-1"
) -> bytes:
    return encode(
        ReadingBatch(
            device=device, seq=3, sent_at=NOW, readings=[Reading(metric=metric, ts=ts, value=value)]
        )
    )


def _accept(payload: bytes, topic: str = "mamori/v1/yamaguchi/wl-1/readings") -> object:
    return accept(TOPICS, topic, payload, devices=DEVICES, limits=LIMITS, now=NOW)


def test_good_batch_gives_rows() -> None:
    accepted = accept(
        TOPICS,
        "mamori/v1/yamaguchi/wl-1/readings",
        _payload(),
        devices=DEVICES,
        limits=LIMITS,
        now=NOW,
    )
    assert accepted.rows == [(NOW, "wl-1", "water_level_m", 2.0, 3)]
    assert accepted.seq == 3


@pytest.mark.parametrize(
    ("payload", "topic", "reason"),
    [
        (_payload(value=250.0), "mamori/v1/yamaguchi/wl-1/readings", DeadLetterReason.OUT_OF_RANGE),
        (
            _payload(ts=NOW + timedelta(hours=2)),
            "mamori/v1/yamaguchi/wl-1/readings",
            DeadLetterReason.OUT_OF_RANGE,
        ),
        (
            _payload(ts=NOW - timedelta(days=60)),
            "mamori/v1/yamaguchi/wl-1/readings",
            DeadLetterReason.OUT_OF_RANGE,
        ),
        (
            _payload(device="wl-9"),
            "mamori/v1/yamaguchi/wl-9/readings",
            DeadLetterReason.UNKNOWN_DEVICE,
        ),
        (_payload(), "mamori/v1/yamaguchi/wl-2/readings", DeadLetterReason.TOPIC_MISMATCH),
        (_payload(), "mamori/v1/hiroshima/wl-1/readings", DeadLetterReason.TOPIC_MISMATCH),
        (_payload(), "mamori/v1/yamaguchi/wl-1/nonsense", DeadLetterReason.BAD_TOPIC),
        (b"garbage", "mamori/v1/yamaguchi/wl-1/readings", DeadLetterReason.UNDECODABLE),
    ],
)
def test_bad_messages_dead_letter_with_a_reason(
    payload: bytes, topic: str, reason: DeadLetterReason
) -> None:
    with pytest.raises(PayloadError) as caught:
        _accept(payload, topic)
    assert caught.value.reason is reason


def test_unknown_metric_is_stored_without_range_check() -> None:
    accepted = accept(
        TOPICS,
        "mamori/v1/yamaguchi/wl-1/readings",
        _payload(metric="new_sensor_x", value=1e9),
        devices=DEVICES,
        limits=LIMITS,
        now=NOW,
    )
    assert len(accepted.rows) == 1


def test_status_message_is_accepted() -> None:
    payload = encode(DeviceStatus(device="wl-1", state=DeviceState.OFFLINE, ts=NOW))
    accepted = accept(
        TOPICS, "mamori/v1/yamaguchi/wl-1/status", payload, devices=DEVICES, limits=LIMITS, now=NOW
    )
    assert accepted.status is not None
    assert accepted.status.state is DeviceState.OFFLINE
    assert accepted.rows == []
