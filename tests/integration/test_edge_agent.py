"""The edge agent through a broker restart: the outbox holds readings until they are acked."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from pydantic import SecretStr

from core.registry import DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, EdgeSettings, IngestSettings, MqttSettings, StreamSensor
from edge_agent.agent import EdgeAgent
from edge_agent.stream import file_identity, read_stream_marked
from ingest.service import IngestService
from mamori.broker import MosquittoBroker, free_port
from store.registry import upsert_device, upsert_site


def _count(url: str, device: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE device_id = %s", (device,)
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _wait(check: object, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.1)


def _append(path: Path, start: datetime, first: int, n: int) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for i in range(first, first + n):
            handle.write(
                f"{(start + timedelta(seconds=i)).isoformat()},water_level_m,{1 + i / 1000}\n"
            )
        handle.write("this line is broken\n")


def test_readings_survive_a_broker_restart(database_url: str, tmp_path: Path) -> None:
    site, device = f"s-{uuid.uuid4().hex[:8]}", f"gw-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=site, name="S"))
        upsert_device(conn, DeviceSpec(id=device, site_id=site, kind="river_level"))
    port = free_port()
    broker = MosquittoBroker(tmp_path / "broker", port=port)
    broker.start()
    mqtt = MqttSettings(host="127.0.0.1", port=port, topic_prefix=f"t{uuid.uuid4().hex[:8]}")
    ingest = IngestService(
        IngestSettings(
            mqtt=mqtt,
            database=DatabaseSettings(url=SecretStr(database_url)),
            client_id=f"ingest-{uuid.uuid4().hex[:6]}",
            flush_interval_ms=50,
        ),
        database_url,
    )
    ingest.start()
    feed = tmp_path / "logger.csv"
    feed.write_text("ts,metric,value\n")
    agent = EdgeAgent(
        EdgeSettings(
            mqtt=mqtt,
            site=site,
            device=device,
            outbox_path=tmp_path / "outbox.db",
            batch_max_readings=50,
            batch_max_latency_s=0.2,
            sensors=[StreamSensor(path=feed, format="csv")],
        )
    )
    agent.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    try:
        _append(feed, start, 0, 300)
        _wait(lambda: _count(database_url, device) == 300)
        assert _count(database_url, device) == 300

        broker.stop()
        _append(feed, start, 300, 400)  # measured while the broker is down
        _wait(lambda: agent.outbox.stats().pending.get("telemetry", 0) > 0, 10)
        assert agent.outbox.stats().pending.get("telemetry", 0) > 0
        broker.start()

        _wait(lambda: _count(database_url, device) == 700, 60)
        assert _count(database_url, device) == 700
        assert agent.stats.bad_lines == 2
        with psycopg.connect(database_url) as conn:
            seqs = conn.execute(
                "SELECT min(seq), max(seq), count(DISTINCT seq) FROM readings WHERE device_id = %s",
                (device,),
            ).fetchone()
        assert seqs is not None
        low, high, distinct = seqs
        assert (low, distinct) == (0, int(str(high)) + 1)  # no gap in the device's sequence

        # The gateway restarts: it resumes after the last line it had stored, instead of
        # sending the whole logger file again over its cellular link.
        agent.stop()
        _append(feed, start, 700, 50)
        agent = EdgeAgent(agent.settings)
        agent.start()
        _wait(lambda: _count(database_url, device) == 750, 60)
        assert _count(database_url, device) == 750
        assert (agent.stats.readings, agent.stats.bad_lines) == (50, 1)
    finally:
        agent.stop()
        ingest.stop()
        broker.stop()
    assert agent.outbox.path.exists()


def test_a_stream_restarts_from_the_top_of_a_rotated_file(tmp_path: Path) -> None:
    log = tmp_path / "logger.csv"
    start = datetime.now(UTC).replace(microsecond=0)
    _append(log, start, 0, 3)

    def read(resume: tuple[str, int] | None) -> list[tuple[float, tuple[str, int] | None]]:
        return [
            (r.value, mark)
            for r, mark in read_stream_marked(
                log, "csv", follow=False, stopped=lambda: False, resume=resume
            )
            if r is not None
        ]

    first = read(None)
    assert [v for v, _ in first] == [1.0, 1.001, 1.002]
    mark = first[1][1]
    assert mark is not None
    assert mark[0] == file_identity(log)
    assert [v for v, _ in read(mark)] == [1.002]  # after the second line
    log.rename(tmp_path / "logger.csv.1")  # rotated: a new file under the same name
    _append(log, start, 10, 2)
    assert [v for v, _ in read(mark)] == [1.01, 1.011]
