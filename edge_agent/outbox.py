"""The device's durable outbox: SQLite in WAL mode, deleted only after the broker's PUBACK.

Every message is written here, in the same transaction that assigns its sequence number,
before any attempt to send it; ``synchronous=FULL`` makes the commit survive power loss,
not only a crash of the process. The forwarder deletes a row only once the broker
acknowledged it, so a SIGKILL at any instant loses nothing and at worst sends a message
twice (the store drops the copy by its natural key).

Priority lanes: status before telemetry before photos, so a reconnecting device says it
is alive first. The outbox is bounded (``max_bytes``). When full, the oldest *telemetry*
goes first; status and photo messages are never dropped. Every drop is counted by lane,
kept in the outbox's own table, and reported by ``stats()``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from pathlib import Path

from core.errors import StoreError
from core.messages import Reading, ReadingBatch, encode


class Lane(IntEnum):
    STATUS = 0
    TELEMETRY = 1
    PHOTOS = 2


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    lane: Lane
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: dict[str, int]
    pending_bytes: int
    dropped: dict[str, int]
    next_seq: int


_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    lane       INTEGER NOT NULL,
    topic      TEXT NOT NULL,
    payload    BLOB NOT NULL,
    retain     INTEGER NOT NULL DEFAULT 0,
    size       INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (lane, id);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- How far each stream source (a logger's file) has been read into the outbox.
CREATE TABLE IF NOT EXISTS stream_marks (
    source   TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    offset   INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters VALUES ('next_seq', 0), ('dropped_status', 0),
    ('dropped_telemetry', 0), ('dropped_photos', 0);
"""


class Outbox:
    def __init__(
        self, path: Path, *, max_bytes: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the outbox {path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def put(self, lane: Lane, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        """Store a message; False if it was telemetry dropped because the outbox is full."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stored = self._make_room(lane, len(payload))
                if stored:
                    self._insert(lane, topic, payload, retain)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return stored

    def put_readings(
        self,
        topic: str,
        device: str,
        readings: list[Reading],
        *,
        marks: dict[str, tuple[str, int]] | None = None,
    ) -> ReadingBatch | None:
        """Number and store a batch in one transaction: a sequence number is never reused.
        ``marks`` (source → file identity and offset) commit with it: a restarted reader
        resumes after the last line whose readings are safely here."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._save_marks(marks or {})
                seq = self._counter("next_seq")
                batch = ReadingBatch(
                    device=device, seq=seq, sent_at=datetime.now(UTC), readings=readings
                )
                payload = encode(batch)
                self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'next_seq'")
                stored = self._make_room(Lane.TELEMETRY, len(payload))
                if stored:
                    self._insert(Lane.TELEMETRY, topic, payload, False)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return batch if stored else None

    def save_marks(self, marks: dict[str, tuple[str, int]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._save_marks(marks)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _save_marks(self, marks: dict[str, tuple[str, int]]) -> None:
        for source, (identity, offset) in marks.items():
            self._db.execute(
                "INSERT OR REPLACE INTO stream_marks VALUES (?, ?, ?)", (source, identity, offset)
            )

    def stream_mark(self, source: str) -> tuple[str, int] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT identity, offset FROM stream_marks WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def _insert(self, lane: Lane, topic: str, payload: bytes, retain: bool) -> None:
        self._db.execute(
            "INSERT INTO outbox (lane, topic, payload, retain, size, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (int(lane), topic, payload, int(retain), len(payload), self._clock()),
        )

    def _make_room(self, lane: Lane, size: int) -> bool:
        used = int(self._db.execute("SELECT coalesce(sum(size), 0) FROM outbox").fetchone()[0])
        excess = used + size - self.max_bytes
        if excess <= 0:
            return True
        # Oldest telemetry goes first; status and photos are never dropped.
        victims = self._db.execute(
            "SELECT id, size FROM outbox WHERE lane = ? ORDER BY id", (int(Lane.TELEMETRY),)
        ).fetchall()
        freed, ids = 0, []
        for row_id, row_size in victims:
            if freed >= excess:
                break
            ids.append(row_id)
            freed += row_size
        if freed < excess and lane is Lane.TELEMETRY:
            self._db.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'dropped_telemetry'"
            )
            return False  # even an empty telemetry lane cannot hold it: drop the newcomer
        if ids:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._db.execute(
                "UPDATE counters SET value = value + ? WHERE name = 'dropped_telemetry'",
                (len(ids),),
            )
        return True

    def peek(self, limit: int) -> list[OutboxItem]:
        """The next messages to send, status lane first, oldest first within a lane."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, lane, topic, payload, retain FROM outbox ORDER BY lane, id LIMIT ?",
                (limit,),
            ).fetchall()
        return [OutboxItem(int(r[0]), Lane(r[1]), str(r[2]), bytes(r[3]), bool(r[4])) for r in rows]

    def delete(self, ids: list[int]) -> None:
        """Forget messages the broker acknowledged."""
        if not ids:
            return
        with self._lock:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])

    def stats(self) -> OutboxStats:
        with self._lock:
            pending = {
                Lane(lane).name.lower(): int(n)
                for lane, n in self._db.execute("SELECT lane, count(*) FROM outbox GROUP BY lane")
            }
            size = int(self._db.execute("SELECT coalesce(sum(size), 0) FROM outbox").fetchone()[0])
            dropped = {
                lane.name.lower(): self._counter(f"dropped_{lane.name.lower()}") for lane in Lane
            }
            return OutboxStats(pending, size, dropped, self._counter("next_seq"))
