"""Liveness (no authentication, so load balancers can ask) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import Reader, State
from api.models import HealthOut
from api.routes import AUTH_ERRORS
from core.errors import StoreError

router = APIRouter(prefix="/api/v1", tags=["health"])
metrics_router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness and database reachability (no login)")
def health(state: State) -> HealthOut:
    try:
        with state.pool.connection() as conn:
            conn.execute("SELECT 1")
        database = "ok"
    except StoreError:
        database = "unreachable"
    return HealthOut(
        status="ok" if database == "ok" else "degraded",
        database="ok" if database == "ok" else "unreachable",
        time=state.clock(),
    )


@metrics_router.get(
    "/metrics",
    summary="Prometheus metrics (scrape with a viewer API key)",
    responses={**AUTH_ERRORS, 200: {"content": {"text/plain": {}}}},
    response_class=Response,
)
def metrics(state: State, _principal: Reader) -> Response:
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
