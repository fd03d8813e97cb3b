"""Ordered SQL migrations with a recorded version.

Files in ``store/migrations`` are named ``NNNN_name.sql`` (run on every server) or
``NNNN_name.plain.sql`` / ``NNNN_name.timescale.sql`` (run only on that flavour; both
must exist for one version). Each runs in its own transaction and is recorded in
``schema_migrations`` with a checksum, so running ``migrate`` again does nothing and an
edited, already-applied migration is refused instead of silently skipped. An advisory
lock lets many replicas start at once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg

from core.errors import MigrationError
from store.db import Flavour, detect_flavour, translate_errors

_log = logging.getLogger(__name__)
_NAME = re.compile(
    r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+?)(?:\.(?P<flavour>plain|timescale))?\.sql$"
)
#: Arbitrary but fixed: every Mamori process migrating the same database takes this lock.
_LOCK_KEY = 0x6D616D6F7269


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available(flavour: Flavour) -> list[Migration]:
    """The migrations shipped with this build, for ``flavour``, in version order."""
    found: dict[int, Migration] = {}
    for entry in resources.files("store.migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version = int(match["version"])
        file_flavour = match["flavour"]
        if file_flavour is not None and file_flavour != flavour.value:
            continue
        if version in found:
            raise MigrationError(f"two migrations claim version {version}")
        found[version] = Migration(version, match["name"], entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def migrate(
    conn: psycopg.Connection[tuple[object, ...]], flavour: Flavour | None = None
) -> list[Migration]:
    """Apply every pending migration; return those applied (empty when up to date)."""
    if conn.autocommit:
        raise MigrationError("migrate() needs a connection with autocommit off")
    with translate_errors("migration"):
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.commit()
        try:
            return _migrate_locked(conn, flavour)
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()


def _migrate_locked(
    conn: psycopg.Connection[tuple[object, ...]], flavour: Flavour | None
) -> list[Migration]:
    conn.execute(
        """CREATE TABLE IF NOT EXISTS schema_migrations (
               version     integer PRIMARY KEY,
               name        text NOT NULL,
               flavour     text NOT NULL,
               checksum    text NOT NULL,
               applied_at  timestamptz NOT NULL DEFAULT now())"""
    )
    rows = conn.execute("SELECT version, checksum, flavour FROM schema_migrations").fetchall()
    conn.commit()
    applied = {int(str(v)): (str(c), str(f)) for v, c, f in rows}
    if flavour is None:
        recorded = {f for _, f in applied.values()}
        flavour = Flavour(recorded.pop()) if len(recorded) == 1 else detect_flavour(conn)
    if flavour is Flavour.TIMESCALE:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.commit()
    done: list[Migration] = []
    for migration in available(flavour):
        previous = applied.get(migration.version)
        if previous is not None:
            if previous[0] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was changed after it "
                    "was applied; add a new migration instead of editing an applied one"
                )
            continue
        _log.info("applying migration %04d_%s (%s)", migration.version, migration.name, flavour)
        try:
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, flavour, checksum) "
                "VALUES (%s, %s, %s, %s)",
                (migration.version, migration.name, flavour.value, migration.checksum),
            )
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            raise MigrationError(
                f"migration {migration.version:04d}_{migration.name} failed: {exc}"
            ) from exc
        done.append(migration)
    return done


def current_version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The highest applied version, 0 for an empty database."""
    with translate_errors("reading the schema version"):
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return 0
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(str(row[0])) if row else 0
