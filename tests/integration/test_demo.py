"""`mamori demo` as a user runs it: a subprocess whose summary must match the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from edge_agent.fleet import yamaguchi_fleet


def _without_mosquitto(path: str) -> str:
    """PATH with every directory that holds a mosquitto binary removed."""
    return os.pathsep.join(
        d for d in path.split(os.pathsep) if d and not (Path(d) / "mosquitto").exists()
    )


@pytest.mark.parametrize(
    "broker",
    [
        "mosquitto",
        # A user's fresh machine may have no Mosquitto: the embedded amqtt broker then.
        "amqtt",
    ],
)
def test_demo_summary_matches_the_database(pg_admin_url: str, tmp_path: Path, broker: str) -> None:
    name = f"mamori_demo_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(pg_admin_url)
    info["dbname"] = name
    url = psycopg.conninfo.make_conninfo("", **info)
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mamori",
                "demo",
                "--duration",
                "10",
                "--database-url",
                url,
                "--work-dir",
                str(tmp_path),
                "--api-port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={
                **os.environ,
                "COLUMNS": "200",
                "PATH": os.environ["PATH"]
                if broker == "mosquitto"
                else _without_mosquitto(os.environ["PATH"] + os.pathsep + "/usr/sbin"),
            },
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"broker    {broker} on" in result.stdout
        match = re.search(
            r"SUMMARY devices=(\d+) readings_published=(\d+) readings_stored=(\d+) "
            r"dead_letters=(\d+) photos_uploaded=(\d+) photos_inspected=(\d+) "
            r"photos_flagged=(\d+) alerts=(\d+) peak_level=(\d+)",
            result.stdout,
        )
        assert match, result.stdout
        devices, published, stored, letters, uploaded, inspected, flagged, alerts, peak = (
            int(g) for g in match.groups()
        )
        with psycopg.connect(url) as conn:
            in_db = conn.execute("SELECT count(*) FROM readings").fetchone()
            letters_db = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            online = conn.execute("SELECT count(*) FROM devices").fetchone()
            images = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE status = 'flagged') FROM images"
            ).fetchone()
            alert_rows = conn.execute("SELECT count(*), max(level) FROM alerts").fetchone()
            river = conn.execute(
                "SELECT max(e.to_level) FROM alert_events e JOIN alerts a ON a.id = e.alert_id "
                "WHERE a.asset_id LIKE 'fushino-%%'"
            ).fetchone()
        assert devices == len(yamaguchi_fleet().devices) + 1  # and the drone
        assert online == (devices,)
        assert published > 100
        assert stored == published
        assert in_db == (stored,)
        # The demo's faulty accelerometer corrupts every 7th message on purpose.
        assert letters > 0
        assert letters_db == (letters,)
        # The drone's photos went through ingest to the inspection worker.
        assert uploaded == inspected == 4
        assert images == (uploaded, flagged)
        assert flagged >= 1
        # The replayed flood raised river alerts, through the whole ladder to 警戒レベル5.
        assert alert_rows is not None
        # (The engine's last evaluation, after the summary was counted, may open more.)
        assert 0 < alerts <= int(str(alert_rows[0]))
        assert peak >= 4
        assert river is not None
        assert river[0] == 5
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
