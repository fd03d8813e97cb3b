"""Connections, the error boundary, and which flavour of PostgreSQL we are talking to."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import StrEnum

import psycopg

from core.errors import StoreError


class Flavour(StrEnum):
    """Plain PostgreSQL (native partitioning, our time_bucket) or TimescaleDB."""

    PLAIN = "plain"
    TIMESCALE = "timescale"


def connect(
    url: str, *, autocommit: bool = False, application_name: str = "mamori"
) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection; a refused or unreachable server becomes a :class:`StoreError`."""
    try:
        return psycopg.connect(url, autocommit=autocommit, application_name=application_name)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to PostgreSQL: {exc}") from exc


@contextlib.contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Re-raise psycopg errors as :class:`StoreError` naming the operation."""
    try:
        yield
    except psycopg.Error as exc:
        raise StoreError(f"{what} failed: {exc}") from exc


def detect_flavour(conn: psycopg.Connection[tuple[object, ...]]) -> Flavour:
    """TimescaleDB when its extension is installed or can be, plain PostgreSQL otherwise."""
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return Flavour.TIMESCALE if row else Flavour.PLAIN
