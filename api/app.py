"""``create_app(settings, database_url)``: the FastAPI application, built from arguments.

Nothing happens at import time: the pool, the token signer and the metrics registry
are made here and hung on ``app.state.mamori`` for the dependencies in ``api.deps``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import AnyRole, AppState
from api.metrics import ApiMetrics
from api.pool import ConnectionPool
from api.routes import (
    alerts,
    auth,
    cap,
    health,
    images,
    readings,
    registry,
    review_page,
    reviews,
)
from api.security import Clock, TokenSigner, system_clock
from core.errors import StoreError
from core.settings import ApiSettings
from store.api_queries import ConflictError, InvalidValueError, NotFoundError

_log = logging.getLogger(__name__)

#: JSON bodies are small; only photo uploads may use ``settings.max_upload_bytes``.
JSON_BODY_LIMIT: Final = 256 * 1024
UPLOAD_PATH: Final = "/api/v1/images"

_SECURITY_HEADERS: Final = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
]

TAGS: Final = [
    {"name": "auth", "description": "Logging in, tokens, users and API keys."},
    {"name": "registry", "description": "Sites, assets and devices (admins change them)."},
    {"name": "readings", "description": "Bucketed series and latest values."},
    {"name": "images", "description": "Drone photos: list, original, overlay, upload."},
    {"name": "detections", "description": "What the vision models found."},
    {"name": "reviews", "description": "Inspectors' decisions and soundness grades."},
    {"name": "alerts", "description": "Alerts: list, acknowledge, resolve, comment."},
    {"name": "health", "description": "Liveness (no authentication) and metrics."},
]


class _BodyTooLargeError(Exception):
    pass


class GuardMiddleware:
    """Security headers, request-size limits and Prometheus metrics, in one ASGI layer.

    A body is limited while it streams, so a client that lies in Content-Length, or
    sends none, is cut off at the limit without the server buffering the rest.
    """

    def __init__(self, app: ASGIApp, *, upload_limit: int, metrics: ApiMetrics) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_limit if scope["path"] == UPLOAD_PATH else JSON_BODY_LIMIT
        started = time.perf_counter()
        status_code = 500
        response_started = False

        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await self._too_large(scope, receive, send, limit)
            self._observe(scope, 413, started)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = int(message["status"])
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in _SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLargeError:
            if response_started:
                raise
            status_code = 413
            await self._too_large(scope, receive, send_with_headers, limit)
        finally:
            self._observe(scope, status_code, started)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = JSONResponse(
            {"detail": f"request body exceeds {limit} bytes"},
            status_code=413,
            headers={k.decode(): v.decode() for k, v in _SECURITY_HEADERS},
        )
        await response(scope, receive, send)

    def _observe(self, scope: Scope, status_code: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "(unmatched)"
        method = scope.get("method", "")
        self.metrics.requests.labels(template, method, str(status_code)).inc()
        self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)


def create_app(settings: ApiSettings, database_url: str, *, clock: Clock = system_clock) -> FastAPI:
    """Build the API and the review page. ``clock`` is injectable for tests of expiry."""
    pool = ConnectionPool(database_url, size=settings.database.pool_size)
    metrics = ApiMetrics()
    state = AppState(
        settings=settings,
        pool=pool,
        signer=TokenSigner(
            settings.secret_key.get_secret_value(), timedelta(seconds=settings.token_ttl_s), clock
        ),
        clock=clock,
        metrics=metrics,
        blob_dir=settings.blob_dir,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        pool.close()

    app = FastAPI(
        title="Mamori API",
        version="1.0.0",
        summary="Infrastructure monitoring: readings, drone photos, findings, reviews, alerts.",
        description=(
            "Every endpoint except `GET /api/v1/health` needs authentication: "
            "`Authorization: Bearer <token>` from `POST /api/v1/auth/token`, or an API key "
            "(`Authorization: Bearer mk_...` or `X-API-Key`). Roles: admin, inspector, "
            "operator, viewer, device. See docs/api.md."
        ),
        openapi_tags=TAGS,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.mamori = state
    app.add_middleware(GuardMiddleware, upload_limit=settings.max_upload_bytes, metrics=metrics)

    @app.exception_handler(NotFoundError)
    async def _not_found(_request: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(ConflictError)
    async def _conflict(_request: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(InvalidValueError)
    async def _invalid(_request: Request, exc: InvalidValueError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store(_request: Request, exc: StoreError) -> JSONResponse:
        _log.error("database error: %s", exc)
        return JSONResponse({"detail": "the database is unavailable"}, status_code=503)

    # Routes are added as they are, not through include_router: each router carries its
    # own prefix, and a flat list keeps ``app.routes`` (the role-matrix test) and the
    # route templates in metrics plain APIRoutes.
    for router in (
        health.router,
        health.metrics_router,
        auth.router,
        registry.router,
        readings.router,
        images.router,
        reviews.router,
        alerts.router,
        cap.router,
        review_page.router,
    ):
        app.router.routes.extend(router.routes)
    _protect_openapi(app)
    return app


def _protect_openapi(app: FastAPI) -> None:
    """The schema needs a login like everything else; replace FastAPI's public route."""
    app.router.routes = [
        r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url
    ]

    @app.get(app.openapi_url or "/api/v1/openapi.json", include_in_schema=False)
    def openapi_document(_principal: AnyRole) -> JSONResponse:
        return JSONResponse(app.openapi())
