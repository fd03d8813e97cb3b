"""Helpers shared by the store tests: committed writes and rollups computed from raw rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def committed(database_url: str) -> Iterator[Conn]:
    """An autocommit connection, for tests that need other transactions to see their rows.

    Such tests use device ids of their own (:func:`prefix`), so what they leave behind
    cannot disturb another test.
    """
    conn = psycopg.connect(database_url, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def prefix() -> str:
    """A device-id prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:10]}-"
