"""The device outbox: durable, ordered by lane, bounded with a stated drop policy."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.messages import Reading, ReadingBatch, decode
from edge_agent.outbox import Lane, Outbox
from edge_agent.stream import parse_line

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def _readings(n: int) -> list[Reading]:
    return [Reading(metric="rainfall_mm", ts=T0, value=float(i)) for i in range(n)]


def test_status_goes_before_telemetry_before_photos(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000_000)
    box.put(Lane.PHOTOS, "p", b"photo")
    box.put_readings("r", "dev", _readings(2))
    box.put(Lane.STATUS, "s", b"alive", retain=True)
    assert [i.lane for i in box.peek(10)] == [Lane.STATUS, Lane.TELEMETRY, Lane.PHOTOS]
    assert box.peek(1)[0].retain


def test_sequence_numbers_survive_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000_000)
    first = box.put_readings("r", "dev", _readings(1))
    box.close()
    box = Outbox(tmp_path / "o.db", max_bytes=10_000_000)
    second = box.put_readings("r", "dev", _readings(1))
    assert first is not None
    assert second is not None
    assert (first.seq, second.seq) == (0, 1)
    payloads = [decode(ReadingBatch, i.payload, max_bytes=10_000) for i in box.peek(10)]
    assert [p.seq for p in payloads] == [0, 1]


def test_full_outbox_drops_oldest_telemetry_never_status_or_photos(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=4000)
    box.put(Lane.STATUS, "s", b"s" * 500)
    box.put(Lane.PHOTOS, "p", b"p" * 500)
    batches = [box.put_readings("r", "dev", _readings(10)) for _ in range(20)]
    kept = [i for i in box.peek(100) if i.lane is Lane.TELEMETRY]
    stats = box.stats()
    assert stats.pending["status"] == 1
    assert stats.pending["photos"] == 1
    assert stats.pending_bytes <= 4000
    assert stats.dropped["telemetry"] == 20 - len(kept) > 0
    # The newest telemetry is what survives.
    newest = [b.seq for b in batches if b is not None][-len(kept) :]
    assert [decode(ReadingBatch, i.payload, max_bytes=10_000).seq for i in kept] == newest
    # Status is kept even beyond the bound.
    assert box.put(Lane.STATUS, "s", b"s" * 5000)
    assert box.stats().dropped["status"] == 0


def test_acknowledged_messages_are_deleted(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_bytes=10_000_000)
    box.put_readings("r", "dev", _readings(1))
    box.put_readings("r", "dev", _readings(1))
    first = box.peek(1)[0]
    box.delete([first.id])
    assert [i.id for i in box.peek(10)] != [first.id]
    assert box.stats().pending == {"telemetry": 1}


def test_sigkill_right_after_put_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    script = textwrap.dedent(
        f"""
        import os, signal
        from datetime import UTC, datetime
        from core.messages import Reading
        from edge_agent.outbox import Outbox
        box = Outbox(__import__("pathlib").Path({str(path)!r}), max_bytes=10_000_000)
        for i in range(50):
            box.put_readings("r", "dev", [Reading(metric="x", ts=datetime.now(UTC), value=i)])
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=Path(__file__).parents[2]
    )
    assert proc.returncode == -9
    box = Outbox(path, max_bytes=10_000_000)
    assert box.stats().pending == {"telemetry": 50}
    assert box.stats().next_seq == 50


@pytest.mark.parametrize(
    ("line", "fmt", "value"),
    [
        (
            '{"metric": "water_level_m", "ts": "2026-07-01T00:00:00+09:00", "value": 2.5}',
            "ndjson",
            2.5,
        ),
        ("2026-07-01T00:00:00Z,rainfall_mm,1.5", "csv", 1.5),
        ("ts,metric,value", "csv", None),
        ("   ", "ndjson", None),
    ],
)
def test_stream_lines_parse(line: str, fmt: str, value: float | None) -> None:
    reading = parse_line(line, fmt)  # type: ignore[arg-type]
    assert (reading.value if reading else None) == value


@pytest.mark.parametrize(
    ("line", "fmt"),
    [
        ("2026-07-01T00:00:00,rainfall_mm,1.5", "csv"),  # naive time
        ("2026-07-01T00:00:00Z,rainfall_mm", "csv"),
        ("2026-07-01T00:00:00Z,rainfall_mm,abc", "csv"),
        ('{"metric": "x"', "ndjson"),
        ('{"metric": "x", "ts": "2026-07-01T00:00:00Z", "value": NaN}', "ndjson"),
    ],
)
def test_bad_stream_lines_raise_value_error(line: str, fmt: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  the reader counts any of them the same way
        parse_line(line, fmt)  # type: ignore[arg-type]
