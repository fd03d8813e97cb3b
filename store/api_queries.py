"""Typed, parameterised queries behind the HTTP API: registry, readings, photos,
detections, reviews and alerts.

Optional filters use ``(%(x)s::text IS NULL OR col = %(x)s)`` so that every statement
is one constant string: nothing a client sends is ever spliced into SQL. Rows come back
as frozen dataclasses (psycopg's ``class_row``), which the API maps to its pydantic
models. psycopg errors become :class:`core.errors.StoreError`; a missing row is a
:class:`NotFoundError`, a refused write (duplicate, dangling reference, a transition
that is not allowed) a :class:`ConflictError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from core.errors import StoreError
from store import queries

Conn = psycopg.Connection[tuple[object, ...]]


class NotFoundError(StoreError):
    """The row asked for does not exist."""


class ConflictError(StoreError):
    """The write contradicts what is stored: a duplicate, a dangling reference, a state."""


class InvalidValueError(StoreError):
    """A value the database cannot hold (a NUL in text, a number out of range)."""


_INTEGRITY = (
    pg_errors.UniqueViolation,
    pg_errors.ForeignKeyViolation,
    pg_errors.CheckViolation,
    pg_errors.NotNullViolation,
)


@contextlib.contextmanager
def guard(what: str) -> Iterator[None]:
    """Translate psycopg errors: integrity problems to ConflictError, the rest to StoreError."""
    try:
        yield
    except StoreError as exc:
        # store.registry's own boundary already wrapped the psycopg error.
        if isinstance(exc.__cause__, _INTEGRITY):
            raise ConflictError(f"{what}: {exc.__cause__.diag.message_primary}") from exc
        if isinstance(exc.__cause__, psycopg.DataError):
            raise InvalidValueError(f"{what}: {exc.__cause__}") from exc
        raise
    except (pg_errors.UniqueViolation, pg_errors.ForeignKeyViolation) as exc:
        raise ConflictError(f"{what}: {exc.diag.message_primary or exc}") from exc
    except (pg_errors.CheckViolation, pg_errors.NotNullViolation) as exc:
        raise ConflictError(f"{what}: {exc.diag.message_primary or exc}") from exc
    except psycopg.DataError as exc:
        # Raised by psycopg itself for a NUL in text, or by the server for a bad value.
        raise InvalidValueError(f"{what}: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"{what} failed: {exc}") from exc


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True, slots=True)
class SiteRow:
    id: str
    name: str
    name_ja: str | None
    prefecture: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AssetRow:
    id: str
    site_id: str
    kind: str
    name: str
    name_ja: str | None
    lat: float | None
    lon: float | None
    thresholds: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    site_id: str
    asset_id: str | None
    kind: str
    state: str
    state_changed_at: datetime | None
    last_seen_at: datetime | None
    last_seq: int | None
    firmware: str | None
    expected_interval_s: int | None
    created_at: datetime


def list_sites(conn: Conn, *, limit: int, offset: int) -> list[SiteRow]:
    with guard("listing sites"):
        cur = conn.cursor(row_factory=class_row(SiteRow))
        return cur.execute(
            "SELECT id, name, name_ja, prefecture, created_at FROM sites "
            "ORDER BY id LIMIT %s OFFSET %s",
            (limit, offset),
        ).fetchall()


def get_site(conn: Conn, site_id: str) -> SiteRow:
    with guard("reading a site"):
        cur = conn.cursor(row_factory=class_row(SiteRow))
        row = cur.execute(
            "SELECT id, name, name_ja, prefecture, created_at FROM sites WHERE id = %s",
            (site_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(f"site {site_id!r} does not exist")
    return row


_ASSET_COLUMNS = "id, site_id, kind, name, name_ja, lat, lon, thresholds, created_at"


def list_assets(
    conn: Conn, *, site_id: str | None, kind: str | None, limit: int, offset: int
) -> list[AssetRow]:
    with guard("listing assets"):
        cur = conn.cursor(row_factory=class_row(AssetRow))
        return cur.execute(
            f"SELECT {_ASSET_COLUMNS} FROM assets "  # noqa: S608  constant column list
            "WHERE (%(site)s::text IS NULL OR site_id = %(site)s) "
            "AND (%(kind)s::text IS NULL OR kind = %(kind)s) "
            "ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
            {"site": site_id, "kind": kind, "limit": limit, "offset": offset},
        ).fetchall()


def get_asset(conn: Conn, asset_id: str) -> AssetRow:
    with guard("reading an asset"):
        cur = conn.cursor(row_factory=class_row(AssetRow))
        row = cur.execute(
            f"SELECT {_ASSET_COLUMNS} FROM assets WHERE id = %s",  # noqa: S608  constant columns
            (asset_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(f"asset {asset_id!r} does not exist")
    return row


_DEVICE_COLUMNS = (
    "id, site_id, asset_id, kind, state, state_changed_at, last_seen_at, last_seq, "
    "firmware, expected_interval_s, created_at"
)


def list_devices(
    conn: Conn,
    *,
    site_id: str | None,
    asset_id: str | None,
    state: str | None,
    limit: int,
    offset: int,
) -> list[DeviceRow]:
    with guard("listing devices"):
        cur = conn.cursor(row_factory=class_row(DeviceRow))
        return cur.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices "  # noqa: S608  constant column list
            "WHERE (%(site)s::text IS NULL OR site_id = %(site)s) "
            "AND (%(asset)s::text IS NULL OR asset_id = %(asset)s) "
            "AND (%(state)s::text IS NULL OR state = %(state)s) "
            "ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
            {"site": site_id, "asset": asset_id, "state": state, "limit": limit, "offset": offset},
        ).fetchall()


def get_device(conn: Conn, device_id: str) -> DeviceRow:
    with guard("reading a device"):
        cur = conn.cursor(row_factory=class_row(DeviceRow))
        row = cur.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE id = %s",  # noqa: S608  constant columns
            (device_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(f"device {device_id!r} does not exist")
    return row


def delete_row(conn: Conn, table: str, row_id: str) -> None:
    """Delete a site, asset or device; one still referenced is a :class:`ConflictError`."""
    statements = {
        "sites": "DELETE FROM sites WHERE id = %s",
        "assets": "DELETE FROM assets WHERE id = %s",
        "devices": "DELETE FROM devices WHERE id = %s",
    }
    statement = statements[table]
    with guard(f"deleting from {table}"):
        cur = conn.execute(statement, (row_id,))
    if cur.rowcount == 0:
        raise NotFoundError(f"{table[:-1]} {row_id!r} does not exist")


# --------------------------------------------------------------------------- readings


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    bucket: datetime
    device_id: str
    metric: str
    min: float
    max: float
    avg: float
    last: float
    count: int


@dataclass(frozen=True, slots=True)
class LatestReading:
    device_id: str
    metric: str
    ts: datetime
    value: float


def reading_series(
    conn: Conn,
    *,
    device_id: str,
    metric: str | None,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    limit: int,
) -> list[SeriesPoint]:
    """Bucketed min/max/avg/last/count per metric, at most ``limit`` points.

    Read through :func:`store.queries.series`, which takes whole buckets from the
    1-hour or 1-minute rollups where the width allows and the rest from raw rows; with no
    ``metric``, one series per metric the device reported in the range.
    """
    # No more buckets than the caller may return: the rest would be cut anyway.
    end = min(end, queries.floor_bucket(start, bucket) + bucket * min(limit, queries.MAX_BUCKETS))
    if end <= start:
        return []
    metrics = [metric] if metric is not None else _metrics_in_range(conn, device_id, start, end)
    points: list[SeriesPoint] = []
    for name in metrics:
        series = queries.series(
            conn, device_ids=[device_id], metric=name, start=start, end=end, bucket=bucket
        )
        points += [
            SeriesPoint(p.bucket, p.device_id, name, p.min, p.max, p.avg, p.last, p.count)
            for p in series.points
        ]
    points.sort(key=lambda p: (p.bucket, p.metric))
    return points[:limit]


def _metrics_in_range(conn: Conn, device_id: str, start: datetime, end: datetime) -> list[str]:
    """Metrics of ``device_id`` in ``[start, end)``: from the hourly rollup, plus rows
    received since it was last refreshed (a BRIN index on ``received_at`` finds them)."""
    with guard("listing a device's metrics"):
        rows = conn.execute(
            """SELECT metric FROM readings_1h
                WHERE device_id = %(device)s AND bucket >= %(lo)s AND bucket < %(end)s
               UNION
               SELECT metric FROM readings
                WHERE device_id = %(device)s AND ts >= %(start)s AND ts < %(end)s
                  AND received_at >= coalesce(mamori_rollups_complete_through('1h'), '-infinity')
               ORDER BY 1""",
            {
                "device": device_id,
                "lo": queries.floor_bucket(start, timedelta(hours=1)),
                "start": start,
                "end": end,
            },
        ).fetchall()
    return [str(row[0]) for row in rows]


def latest_readings(
    conn: Conn,
    *,
    device_id: str | None,
    asset_id: str | None,
    since: datetime,
    limit: int,
) -> list[LatestReading]:
    """The newest value of each (device, metric) received after ``since``."""
    with guard("reading latest values"):
        cur = conn.cursor(row_factory=class_row(LatestReading))
        return cur.execute(
            """SELECT DISTINCT ON (r.device_id, r.metric) r.device_id, r.metric, r.ts, r.value
               FROM readings r
               WHERE r.ts >= %(since)s
                 AND (%(device)s::text IS NULL OR r.device_id = %(device)s)
                 AND (%(asset)s::text IS NULL OR r.device_id IN (
                          SELECT d.id FROM devices d WHERE d.asset_id = %(asset)s))
               ORDER BY r.device_id, r.metric, r.ts DESC
               LIMIT %(limit)s""",
            {"since": since, "device": device_id, "asset": asset_id, "limit": limit},
        ).fetchall()


# --------------------------------------------------------------------------- images


@dataclass(frozen=True, slots=True)
class ImageRow:
    id: str
    device_id: str | None
    asset_id: str | None
    captured_at: datetime | None
    received_at: datetime
    blob_key: str
    sha256: str
    size_bytes: int
    content_type: str
    width: int | None
    height: int | None
    meta: dict[str, Any]
    status: str
    status_changed_at: datetime
    error: str | None
    review_reason: str | None


_IMAGE_COLUMNS = (
    "id, device_id, asset_id, captured_at, received_at, blob_key, sha256, size_bytes, "
    "content_type, width, height, meta, status, status_changed_at, error, review_reason"
)


def list_images(
    conn: Conn,
    *,
    asset_id: str | None,
    status: str | None,
    device_id: str | None,
    limit: int,
    offset: int,
) -> list[ImageRow]:
    with guard("listing photos"):
        cur = conn.cursor(row_factory=class_row(ImageRow))
        return cur.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images "  # noqa: S608  constant column list
            "WHERE (%(asset)s::text IS NULL OR asset_id = %(asset)s) "
            "AND (%(status)s::text IS NULL OR status = %(status)s) "
            "AND (%(device)s::text IS NULL OR device_id = %(device)s) "
            "ORDER BY received_at DESC, id LIMIT %(limit)s OFFSET %(offset)s",
            {
                "asset": asset_id,
                "status": status,
                "device": device_id,
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()


def get_image(conn: Conn, image_id: str) -> ImageRow:
    with guard("reading a photo"):
        cur = conn.cursor(row_factory=class_row(ImageRow))
        row = cur.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id = %s",  # noqa: S608  constant columns
            (image_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(f"photo {image_id!r} does not exist")
    return row


@dataclass(frozen=True, slots=True)
class NewImage:
    id: str
    device_id: str | None
    asset_id: str | None
    captured_at: datetime | None
    blob_key: str
    sha256: str
    size_bytes: int
    content_type: str
    width: int
    height: int
    meta: dict[str, Any]


def insert_image(conn: Conn, image: NewImage) -> None:
    """Record an uploaded photo as ``pending`` for the inspection worker."""
    with guard("recording a photo"):
        conn.execute(
            """INSERT INTO images (id, device_id, asset_id, captured_at, blob_key, sha256,
                                   size_bytes, content_type, width, height, meta)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                image.id,
                image.device_id,
                image.asset_id,
                image.captured_at,
                image.blob_key,
                image.sha256,
                image.size_bytes,
                image.content_type,
                image.width,
                image.height,
                Jsonb(image.meta),
            ),
        )


# --------------------------------------------------------------------------- detections


@dataclass(frozen=True, slots=True)
class DetectionRow:
    id: int
    image_id: str
    damage_type: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float
    length_px: float | None
    max_width_px: float | None
    length_mm: float | None
    max_width_mm: float | None
    flagged_reason: str | None
    model_name: str
    model_version: str
    created_at: datetime


_DETECTION_COLUMNS = (
    "id, image_id, damage_type, confidence, x1, y1, x2, y2, length_px, max_width_px, "
    "length_mm, max_width_mm, flagged_reason, model_name, model_version, created_at"
)


def detections_for(conn: Conn, image_ids: Sequence[str]) -> list[DetectionRow]:
    with guard("reading detections"):
        cur = conn.cursor(row_factory=class_row(DetectionRow))
        return cur.execute(
            f"SELECT {_DETECTION_COLUMNS} FROM detections "  # noqa: S608  constant columns
            "WHERE image_id = ANY(%s) ORDER BY image_id, id",
            (list(image_ids),),
        ).fetchall()


def list_detections(
    conn: Conn,
    *,
    image_id: str | None,
    damage_type: str | None,
    min_confidence: float,
    model_version: str | None,
    limit: int,
    offset: int,
) -> list[DetectionRow]:
    with guard("listing detections"):
        cur = conn.cursor(row_factory=class_row(DetectionRow))
        return cur.execute(
            f"SELECT {_DETECTION_COLUMNS} FROM detections "  # noqa: S608  constant columns
            "WHERE (%(image)s::text IS NULL OR image_id = %(image)s) "
            "AND (%(type)s::text IS NULL OR damage_type = %(type)s) "
            "AND (%(model)s::text IS NULL OR model_version = %(model)s) "
            "AND confidence >= %(conf)s "
            "ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {
                "image": image_id,
                "type": damage_type,
                "model": model_version,
                "conf": min_confidence,
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()


def get_detection(conn: Conn, detection_id: int) -> DetectionRow:
    with guard("reading a detection"):
        cur = conn.cursor(row_factory=class_row(DetectionRow))
        row = cur.execute(
            f"SELECT {_DETECTION_COLUMNS} FROM detections WHERE id = %s",  # noqa: S608
            (detection_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(f"detection {detection_id} does not exist")
    return row


def insert_inspector_detection(
    conn: Conn,
    *,
    image_id: str,
    damage_type: str,
    box: tuple[float, float, float, float],
    model_version: str,
) -> int:
    """A box the model missed, drawn by an inspector: a detection with confidence 1."""
    x1, y1, x2, y2 = box
    with guard("adding a box"):
        row = conn.execute(
            """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2, y2,
                                       flagged_reason, model_name, model_version)
               VALUES (%s, %s, 1.0, %s, %s, %s, %s, 'added by an inspector', %s, %s)
               RETURNING id""",
            (image_id, damage_type, x1, y1, x2, y2, model_version, model_version),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


# --------------------------------------------------------------------------- reviews


@dataclass(frozen=True, slots=True)
class ReviewRow:
    id: int
    image_id: str
    detection_id: int | None
    reviewer: str
    action: str
    damage_type: str | None
    x1: float | None
    y1: float | None
    x2: float | None
    y2: float | None
    member: str | None
    grade: str | None
    note: str | None
    created_at: datetime
    # A worker's measurement of the crack in this review's box (adjust/add), once made.
    measured_length_px: float | None = None
    measured_max_width_px: float | None = None
    measured_length_mm: float | None = None
    measured_max_width_mm: float | None = None


@dataclass(frozen=True, slots=True)
class NewReview:
    image_id: str
    detection_id: int | None
    reviewer: str
    action: str
    damage_type: str | None = None
    box: tuple[float, float, float, float] | None = None
    member: str | None = None
    grade: str | None = None
    note: str | None = None


_REVIEW_COLUMNS = (
    "id, image_id, detection_id, reviewer, action, damage_type, x1, y1, x2, y2, member, "
    "grade, note, created_at"
)


def insert_review(conn: Conn, review: NewReview, at: datetime) -> ReviewRow:
    box = review.box or (None, None, None, None)
    with guard("recording a review"):
        cur = conn.cursor(row_factory=class_row(ReviewRow))
        row = cur.execute(
            f"""INSERT INTO reviews (image_id, detection_id, reviewer, action, damage_type,
                                    x1, y1, x2, y2, member, grade, note, created_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               RETURNING {_REVIEW_COLUMNS}""",  # noqa: S608  constant column list
            (
                review.image_id,
                review.detection_id,
                review.reviewer,
                review.action,
                review.damage_type,
                *box,
                review.member,
                review.grade,
                review.note,
                at,
            ),
        ).fetchone()
    assert row is not None
    return row


def reviews_for(conn: Conn, image_ids: Sequence[str]) -> list[ReviewRow]:
    with guard("reading reviews"):
        cur = conn.cursor(row_factory=class_row(ReviewRow))
        return cur.execute(
            f"SELECT {_REVIEW_COLUMNS}, m.length_px AS measured_length_px, "  # noqa: S608
            "m.max_width_px AS measured_max_width_px, m.length_mm AS measured_length_mm, "
            "m.max_width_mm AS measured_max_width_mm "
            "FROM reviews LEFT JOIN review_measurements m ON m.review_id = reviews.id "
            "WHERE image_id = ANY(%s) ORDER BY created_at, id",
            (list(image_ids),),
        ).fetchall()


def list_reviews(
    conn: Conn,
    *,
    image_id: str | None,
    reviewer: str | None,
    action: str | None,
    limit: int,
    offset: int,
) -> list[ReviewRow]:
    with guard("listing reviews"):
        cur = conn.cursor(row_factory=class_row(ReviewRow))
        return cur.execute(
            f"SELECT {_REVIEW_COLUMNS} FROM reviews "  # noqa: S608  constant column list
            "WHERE (%(image)s::text IS NULL OR image_id = %(image)s) "
            "AND (%(reviewer)s::text IS NULL OR reviewer = %(reviewer)s) "
            "AND (%(action)s::text IS NULL OR action = %(action)s) "
            "ORDER BY created_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {
                "image": image_id,
                "reviewer": reviewer,
                "action": action,
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()


def images_awaiting_review(conn: Conn, *, asset_id: str | None, limit: int) -> list[ImageRow]:
    """Photos with at least one detection no inspector has decided on yet."""
    with guard("reading the review queue"):
        cur = conn.cursor(row_factory=class_row(ImageRow))
        return cur.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images i "  # noqa: S608  constant column list
            """WHERE (%(asset)s::text IS NULL OR i.asset_id = %(asset)s)
                 AND i.status IN ('flagged', 'done')
                 AND EXISTS (
                   SELECT 1 FROM detections d
                   WHERE d.image_id = i.id AND NOT EXISTS (
                       SELECT 1 FROM reviews r
                       WHERE r.detection_id = d.id
                         AND r.action IN ('confirm', 'reject', 'reclassify', 'adjust', 'add')))
               ORDER BY i.received_at, i.id
               LIMIT %(limit)s""",
            {"asset": asset_id, "limit": limit},
        ).fetchall()


def reviewed_images(conn: Conn) -> list[ImageRow]:
    """Photos an inspector has looked at (any review), oldest first."""
    with guard("reading reviewed photos"):
        cur = conn.cursor(row_factory=class_row(ImageRow))
        return cur.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images i "  # noqa: S608  constant column list
            "WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.image_id = i.id) "
            "ORDER BY i.received_at, i.id"
        ).fetchall()


# --------------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    rule_id: str
    asset_id: str
    level: int
    state: str
    title: str
    detail: dict[str, Any]
    opened_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


_ALERT_COLUMNS = (
    "id, rule_id, asset_id, level, state, title, detail, opened_at, updated_at, "
    "acknowledged_at, acknowledged_by, resolved_at, resolved_by"
)


def list_alerts(
    conn: Conn,
    *,
    state: str | None,
    asset_id: str | None,
    min_level: int,
    limit: int,
    offset: int,
) -> list[AlertRow]:
    with guard("listing alerts"):
        cur = conn.cursor(row_factory=class_row(AlertRow))
        return cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts "  # noqa: S608  constant column list
            "WHERE (%(state)s::text IS NULL OR state = %(state)s) "
            "AND (%(asset)s::text IS NULL OR asset_id = %(asset)s) "
            "AND level >= %(level)s "
            "ORDER BY opened_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
            {
                "state": state,
                "asset": asset_id,
                "level": min_level,
                "limit": limit,
                "offset": offset,
            },
        ).fetchall()


def get_alert(conn: Conn, alert_id: int, *, for_update: bool = False) -> AlertRow:
    statement = (
        f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s FOR UPDATE"  # noqa: S608
        if for_update
        else f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s"  # noqa: S608
    )
    with guard("reading an alert"):
        cur = conn.cursor(row_factory=class_row(AlertRow))
        row = cur.execute(statement, (alert_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"alert {alert_id} does not exist")
    return row


@dataclass(frozen=True, slots=True)
class AlertCommentRow:
    id: int
    alert_id: int
    at: datetime
    actor: str
    note: str


def alert_comments(conn: Conn, alert_id: int) -> list[AlertCommentRow]:
    with guard("reading an alert's notes"):
        cur = conn.cursor(row_factory=class_row(AlertCommentRow))
        return cur.execute(
            "SELECT id, alert_id, at, actor, note FROM alert_comments "
            "WHERE alert_id = %s ORDER BY at, id",
            (alert_id,),
        ).fetchall()


def add_alert_comment(
    conn: Conn, alert_id: int, *, actor: str, note: str, at: datetime
) -> AlertCommentRow:
    get_alert(conn, alert_id)
    with guard("adding a note to an alert"):
        cur = conn.cursor(row_factory=class_row(AlertCommentRow))
        row = cur.execute(
            "INSERT INTO alert_comments (alert_id, at, actor, note) VALUES (%s, %s, %s, %s) "
            "RETURNING id, alert_id, at, actor, note",
            (alert_id, at, actor, note),
        ).fetchone()
    assert row is not None
    return row


#: An operator's transitions: (states it may start from, the state it leads to, the
#: ``alert_events.transition`` it writes, as named by ``core.alerting.Transition``).
#: The engine alone opens alerts and changes their level.
OPERATOR_TRANSITIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "acknowledge": (frozenset({"open"}), "acknowledged", "acknowledged"),
    "resolve": (frozenset({"open", "acknowledged"}), "resolved", "resolved"),
}


def transition_alert(
    conn: Conn, alert_id: int, *, action: str, actor: str, note: str | None, at: datetime
) -> AlertRow:
    """Apply an operator's transition and append it to ``alert_events``, atomically.

    The row is locked first, so an engine update and an operator's click cannot
    interleave; a transition the current state does not allow is a ConflictError.
    """
    allowed_from, target, transition = OPERATOR_TRANSITIONS[action]
    with conn.transaction():
        alert = get_alert(conn, alert_id, for_update=True)
        if alert.state not in allowed_from:
            raise ConflictError(f"cannot {action} an alert that is {alert.state}")
        with guard("changing an alert"):
            if action == "acknowledge":
                conn.execute(
                    "UPDATE alerts SET state = %s, acknowledged_at = %s, acknowledged_by = %s, "
                    "updated_at = %s WHERE id = %s",
                    (target, at, actor, at, alert_id),
                )
            else:
                conn.execute(
                    "UPDATE alerts SET state = %s, resolved_at = %s, resolved_by = %s, "
                    "updated_at = %s WHERE id = %s",
                    (target, at, actor, at, alert_id),
                )
            conn.execute(
                """INSERT INTO alert_events (alert_id, at, actor, transition, from_state,
                                             to_state, from_level, to_level, note)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    alert_id,
                    at,
                    actor,
                    transition,
                    alert.state,
                    target,
                    alert.level,
                    alert.level,
                    note,
                ),
            )
        return get_alert(conn, alert_id)


# --------------------------------------------------------------------------- CAP


@dataclass(frozen=True, slots=True)
class CapMessageRow:
    identifier: str
    alert_id: int
    msg_type: str
    sent: datetime
    xml: str


def recent_cap_messages(conn: Conn, *, limit: int) -> list[CapMessageRow]:
    """The newest CAP 1.2 messages the alert engine issued (``alert_cap_messages``)."""
    with guard("listing CAP messages"):
        cur = conn.cursor(row_factory=class_row(CapMessageRow))
        return cur.execute(
            "SELECT identifier, alert_id, msg_type, sent, xml FROM alert_cap_messages "
            "ORDER BY sent DESC, identifier LIMIT %s",
            (limit,),
        ).fetchall()


def get_cap_message(conn: Conn, identifier: str) -> CapMessageRow:
    with guard("reading a CAP message"):
        cur = conn.cursor(row_factory=class_row(CapMessageRow))
        row = cur.execute(
            "SELECT identifier, alert_id, msg_type, sent, xml FROM alert_cap_messages "
            "WHERE identifier = %s",
            (identifier,),
        ).fetchone()
    if row is None:
        raise NotFoundError(f"CAP message {identifier!r} does not exist")
    return row
