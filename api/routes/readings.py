"""Readings: bucketed series for charts and the latest value of each metric."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Query
from pydantic import AwareDatetime

from api.deps import Db, Reader, State
from api.models import LatestOut, SeriesOut, SeriesPointOut
from api.routes import AUTH_ERRORS
from core.messages import Ident, MetricName
from store import api_queries as q

router = APIRouter(prefix="/api/v1", tags=["readings"])

#: Bucket widths a client may ask for (the rollups will serve 1m and 1h directly).
BUCKETS: Final = {
    "1m": timedelta(minutes=1),
    "5m": timedelta(minutes=5),
    "10m": timedelta(minutes=10),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
MAX_POINTS: Final = 10_000
MAX_SPAN: Final = timedelta(days=366)


@router.get(
    "/readings/series",
    summary="Bucketed min/max/avg/last/count of one device's metrics",
    responses=AUTH_ERRORS,
)
def series(
    _p: Reader,
    state: State,
    conn: Db,
    device_id: Ident,
    metric: MetricName | None = None,
    start: AwareDatetime | None = None,
    end: AwareDatetime | None = None,
    bucket: Annotated[str, Query(pattern=r"^(1m|5m|10m|1h|1d)$")] = "10m",
) -> SeriesOut:
    end = end or state.clock()
    start = start or end - timedelta(hours=24)
    if not start < end or end - start > MAX_SPAN:
        raise HTTPException(422, "need start < end, at most 366 days apart")
    width = BUCKETS[bucket]
    points = q.reading_series(
        conn,
        device_id=device_id,
        metric=metric,
        start=start,
        end=end,
        bucket=width,
        limit=MAX_POINTS,
    )
    return SeriesOut(
        device_id=device_id,
        bucket_s=int(width.total_seconds()),
        start=start,
        end=end,
        points=[SeriesPointOut.model_validate(p) for p in points],
    )


@router.get(
    "/readings/latest",
    summary="The newest value of each metric per device (last 7 days)",
    responses=AUTH_ERRORS,
)
def latest(
    _p: Reader,
    state: State,
    conn: Db,
    device_id: Ident | None = None,
    asset_id: Ident | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> list[LatestOut]:
    rows = q.latest_readings(
        conn,
        device_id=device_id,
        asset_id=asset_id,
        since=state.clock() - timedelta(days=7),
        limit=limit,
    )
    return [LatestOut.model_validate(r) for r in rows]
