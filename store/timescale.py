"""Everything TimescaleDB-specific that runs after migration, in one place.

The schema side lives in ``migrations/0002_readings.timescale.sql`` (the hypertable) and
``migrations/0003_rollups.timescale.sql`` (compression, continuous aggregates
``readings_1m`` and ``readings_1h``, refresh, compression and retention policies). This
module keeps those policies in step with :class:`core.retention.RetentionSettings`, so
the settings, not the migration's defaults, decide how long data lives. The statements,
in full, are listed in ``docs/storage.md``::

    SELECT remove_retention_policy(<relation>, if_exists => true);
    SELECT add_retention_policy(<relation>, drop_after => <interval>);
    SELECT remove_compression_policy('readings', if_exists => true);
    SELECT add_compression_policy('readings', compress_after => <interval>);

``add_*_policy(..., if_not_exists => true)`` would keep a policy whose interval differs,
hence remove-then-add; both run in one transaction, so no moment is left without one.
Nothing here runs on plain PostgreSQL, where :mod:`store.maintenance` does the same work
by hand; the project's machines cannot install TimescaleDB, so this path is kept short.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg

from core.retention import RetentionSettings
from store.db import translate_errors

_log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]

#: The relations that carry a retention policy, with the setting that sizes it.
_RETAINED = ("readings", "readings_1m", "readings_1h")


def _retention_of(settings: RetentionSettings, relation: str) -> timedelta | None:
    return {
        "readings": settings.raw,
        "readings_1m": settings.rollup_1m,
        "readings_1h": settings.rollup_1h,
    }[relation]


def sync_policies(conn: Conn, settings: RetentionSettings) -> list[str]:
    """Make retention and compression policies match ``settings``; describe the result.

    Runs in the caller's transaction. Continuous-aggregate refresh policies are left as
    the migration made them (their windows follow the ingest's late-data limit).
    """
    described: list[str] = []
    with translate_errors("updating TimescaleDB policies"):
        for relation in _RETAINED:
            keep = _retention_of(settings, relation)
            conn.execute(
                "SELECT remove_retention_policy(%s::regclass, if_exists => true)", (relation,)
            )
            if keep is None:
                described.append(f"{relation} kept forever")
                continue
            conn.execute(
                "SELECT add_retention_policy(%s::regclass, drop_after => %s::interval)",
                (relation, keep),
            )
            described.append(f"{relation} dropped after {keep.days} days")
        compress_after = timedelta(days=settings.compress_after_days)
        conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
        conn.execute(
            "SELECT add_compression_policy('readings', compress_after => %s::interval)",
            (compress_after,),
        )
        described.append(f"readings compressed after {compress_after.days} days")
    _log.info("TimescaleDB policies: %s", "; ".join(described))
    return described


def compression_ratio(conn: Conn) -> float | None:
    """Bytes before / after compression of the raw hypertable, ``None`` if nothing is."""
    with translate_errors("reading compression stats"):
        row = conn.execute(
            "SELECT before_compression_total_bytes, after_compression_total_bytes "
            "FROM hypertable_compression_stats('readings')"
        ).fetchone()
    if row is None or not row[0] or not row[1]:
        return None
    return int(str(row[0])) / int(str(row[1]))
