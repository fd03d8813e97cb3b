"""core: messages, topics, settings. Pure, no services."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ConfigError, DeadLetterReason, PayloadError, TopicError
from core.messages import DeviceState, DeviceStatus, Reading, ReadingBatch, decode, encode
from core.settings import ApiSettings, IngestSettings, load_settings
from core.topics import TopicKind, Topics

T0 = datetime(2026, 7, 1, 3, 0, tzinfo=UTC)


def _batch(**overrides: object) -> ReadingBatch:
    fields: dict[str, object] = {
        "device": "wl-1",
        "seq": 7,
        "sent_at": T0,
        "readings": [Reading(metric="water_level_m", ts=T0, value=2.5)],
    }
    fields.update(overrides)
    return ReadingBatch.model_validate(fields)


def test_batch_round_trips() -> None:
    batch = _batch()
    assert decode(ReadingBatch, encode(batch), max_bytes=10_000) == batch


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", DeadLetterReason.UNDECODABLE),
        (b'{"v": 1, "device": "wl-1"', DeadLetterReason.UNDECODABLE),
        (
            b'{"v": 2, "device": "wl-1", "seq": 1, "sent_at": "2026-07-01T00:00:00Z",'
            b' "readings": [{"metric": "x", "ts": "2026-07-01T00:00:00Z", "value": 1}]}',
            DeadLetterReason.INVALID,
        ),
        (
            b'{"v": 1, "device": "wl-1", "seq": 1, "sent_at": "2026-07-01T00:00:00Z",'
            b' "readings": [{"metric": "x", "ts": "2026-07-01T00:00:00Z", "value": NaN}]}',
            DeadLetterReason.OUT_OF_RANGE,
        ),
        (
            b'{"v": 1, "device": "wl-1", "seq": 1, "sent_at": "2026-07-01T00:00:00",'
            b' "readings": [{"metric": "x", "ts": "2026-07-01T00:00:00Z", "value": 1}]}',
            DeadLetterReason.INVALID,
        ),  # naive timestamps are refused: whose time zone?
        (
            b'{"v": 1, "device": "WL 1", "seq": 1, "sent_at": "2026-07-01T00:00:00Z",'
            b' "readings": [{"metric": "x", "ts": "2026-07-01T00:00:00Z", "value": 1}]}',
            DeadLetterReason.INVALID,
        ),
        (
            b'{"v": 1, "device": "wl-1", "seq": -1, "sent_at": "2026-07-01T00:00:00Z",'
            b' "readings": [{"metric": "x", "ts": "2026-07-01T00:00:00Z", "value": 1}]}',
            DeadLetterReason.INVALID,
        ),
        (
            b'{"v": 1, "device": "wl-1", "seq": 1, "sent_at": "2026-07-01T00:00:00Z",'
            b' "readings": []}',
            DeadLetterReason.INVALID,
        ),
    ],
)
def test_bad_payloads_name_their_reason(raw: bytes, reason: DeadLetterReason) -> None:
    with pytest.raises(PayloadError) as caught:
        decode(ReadingBatch, raw, max_bytes=10_000)
    assert caught.value.reason is reason
    assert caught.value.detail


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadError) as caught:
        decode(ReadingBatch, b"x" * 2000, max_bytes=1000)
    assert caught.value.reason is DeadLetterReason.OVERSIZED


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_raise_payload_error(raw: bytes) -> None:
    # The property: every failure is a PayloadError (never a crash of another kind);
    # what succeeds is a valid batch.
    with contextlib.suppress(PayloadError):
        assert decode(ReadingBatch, raw, max_bytes=1000).readings


def test_status_message_round_trips() -> None:
    status = DeviceStatus(device="wl-1", state=DeviceState.ONLINE, ts=T0, firmware="1.2")
    assert decode(DeviceStatus, encode(status), max_bytes=1000) == status


def test_topics_build_and_parse() -> None:
    topics = Topics("mamori")
    assert topics.readings("yamaguchi", "wl-1") == "mamori/v1/yamaguchi/wl-1/readings"
    parsed = topics.parse("mamori/v1/yamaguchi/wl-1/readings")
    assert (parsed.kind, parsed.site, parsed.device) == (TopicKind.READINGS, "yamaguchi", "wl-1")
    chunk = topics.parse(topics.photo_chunk("s", "drone-1", "p-1", 12))
    assert (chunk.kind, chunk.photo_id, chunk.chunk_index) == (TopicKind.PHOTO_CHUNK, "p-1", 12)
    assert topics.shared("ingest", topics.all_readings()) == "$share/ingest/mamori/v1/+/+/readings"


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/s/d/readings",
        "mamori/v2/s/d/readings",
        "mamori/v1/s/d/unknown",
        "mamori/v1/S/d/readings",
        "mamori/v1/s/../readings",
        "mamori/v1/s/d/photos/p/chunks/-1",
        "mamori/v1/s/d",
    ],
)
def test_foreign_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        Topics("mamori").parse(topic)


@given(st.text(max_size=80))
def test_topic_parser_never_crashes(topic: str) -> None:
    with contextlib.suppress(TopicError):
        parsed = Topics("mamori").parse(topic)
        assert topic.startswith(f"mamori/v1/{parsed.site}/{parsed.device}/")


def test_settings_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("batch_max_rows: 100\nmqtt:\n  host: broker.example\n  port: 8883\n")
    monkeypatch.setenv("MAMORI_INGEST_MQTT__PORT", "1884")
    settings = load_settings(IngestSettings, config)
    assert settings.batch_max_rows == 100
    assert (settings.mqtt.host, settings.mqtt.port) == ("broker.example", 1884)


def test_settings_errors_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "ingest.yaml"
    config.write_text("batch_max_rows: -5\nunknown_key: 1\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(IngestSettings, config)
    assert "batch_max_rows" in str(caught.value)
    assert "unknown_key" in str(caught.value)


def test_settings_refuse_default_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMORI_API_SECRET_KEY", "changeme")
    with pytest.raises(ConfigError, match="secret_key"):
        load_settings(ApiSettings)
    monkeypatch.setenv("MAMORI_API_SECRET_KEY", "x" * 40)
    settings = load_settings(ApiSettings)
    assert "x" * 40 not in str(settings.redacted())


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("mqtt: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(IngestSettings, config)
