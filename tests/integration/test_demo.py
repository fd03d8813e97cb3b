"""`mamori demo` as a user runs it: a subprocess whose summary must match the database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from psycopg import sql


def test_demo_summary_matches_the_database(pg_admin_url: str, tmp_path: Path) -> None:
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
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        match = re.search(
            r"SUMMARY devices=(\d+) readings_published=(\d+) "
            r"readings_stored=(\d+) dead_letters=(\d+)",
            result.stdout,
        )
        assert match, result.stdout
        devices, published, stored, letters = (int(g) for g in match.groups())
        with psycopg.connect(url) as conn:
            in_db = conn.execute("SELECT count(*) FROM readings").fetchone()
            letters_db = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            online = conn.execute("SELECT count(*) FROM devices").fetchone()
        assert devices == 6
        assert online == (devices,)
        assert published > 100
        assert stored == published
        assert in_db == (stored,)
        # The demo's faulty accelerometer corrupts every 7th message on purpose.
        assert letters > 0
        assert letters_db == (letters,)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
