"""Fixtures for real services: PostgreSQL and Mosquitto, never mocks of them.

PostgreSQL: ``MAMORI_TEST_DATABASE_URL`` names a server where we may create databases
(CI uses the machine's PostgreSQL); unset, an embedded server starts in a temporary
directory. Each test session gets a throwaway database, migrated once; the ``db``
fixture rolls back after each test.

Mosquitto: ``MAMORI_TEST_MQTT_HOST``/``_PORT`` name a broker; unset, a private Mosquitto
starts on a free port (the binary must be installed: ``.ci/run`` installs it). Each test
gets a unique topic prefix, so tests never see each other's messages.

A missing service is an error, never a skip: with ``MAMORI_FAIL_ON_SKIP=1`` (set by
``.ci/run``) any skipped test fails the run.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from core.settings import MqttSettings
from mamori.broker import MosquittoBroker
from store.embedded import EmbeddedPostgres
from tests.support import migrated_database

Conn = psycopg.Connection[tuple[object, ...]]

# The training smoke test needs the `train` extra (torch, ultralytics: gigabytes) in its
# own interpreter, so it runs only when asked: MAMORI_TRAIN_TESTS=1 pytest tests/train.
# Not collected is not skipped: the default run never pretends to have run it.
collect_ignore = [] if os.environ.get("MAMORI_TRAIN_TESTS") == "1" else ["train"]


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("MAMORI_TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, migrated database for this test session, dropped afterwards."""
    with migrated_database(pg_admin_url, "mamori_test") as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Conn]:
    """A connection whose work is rolled back after the test."""
    conn = psycopg.connect(database_url)
    try:
        yield conn
    finally:
        conn.rollback()
        conn.close()


@pytest.fixture(scope="session")
def mqtt_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    host = os.environ.get("MAMORI_TEST_MQTT_HOST")
    if host:
        yield host, int(os.environ.get("MAMORI_TEST_MQTT_PORT", "1883"))
        return
    if not MosquittoBroker.available():
        pytest.fail("mosquitto is not installed and MAMORI_TEST_MQTT_HOST is unset (run .ci/run)")
    broker = MosquittoBroker(Path(tmp_path_factory.mktemp("mosquitto")))
    info = broker.start()
    try:
        yield info.host, info.port
    finally:
        broker.stop()


@pytest.fixture
def mqtt_settings(mqtt_endpoint: tuple[str, int]) -> MqttSettings:
    """Broker settings with a topic prefix no other test uses."""
    host, port = mqtt_endpoint
    return MqttSettings(host=host, port=port, topic_prefix=f"t{uuid.uuid4().hex[:12]}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("MAMORI_FAIL_ON_SKIP") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped:
        print(f"\nMAMORI_FAIL_ON_SKIP: {len(skipped)} test(s) skipped; a skip is a failure here")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A CLI test configures the root logger onto its runner's stream, which closes with
    the test; later log lines (other tests' threads) must not go to the closed stream."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
