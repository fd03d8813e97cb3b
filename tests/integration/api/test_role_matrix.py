"""Every route, every role: who may call it. A route missing from MATRIX fails here."""

from __future__ import annotations

import re
from typing import Final

import pytest
from fastapi.routing import APIRoute

from api.security import Role
from tests.integration.api.conftest import ApiEnv, seed

ADM, INS, OPS, VIE, DEV = Role.ADMIN, Role.INSPECTOR, Role.OPERATOR, Role.VIEWER, Role.DEVICE
HUMANS: Final = frozenset({ADM, INS, OPS, VIE})
EVERYONE: Final = frozenset(Role)
PUBLIC: Final = "public"

#: (method, path) -> the roles allowed, or PUBLIC (no login needed).
MATRIX: Final[dict[tuple[str, str], frozenset[Role] | str]] = {
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/token"): PUBLIC,
    ("GET", "/review/login"): PUBLIC,
    ("POST", "/review/login"): PUBLIC,
    ("POST", "/review/logout"): PUBLIC,
    ("GET", "/review/static/{name}"): PUBLIC,
    ("GET", "/metrics"): HUMANS,
    ("GET", "/api/v1/openapi.json"): EVERYONE,
    ("GET", "/api/v1/auth/me"): EVERYONE,
    ("POST", "/api/v1/auth/logout"): EVERYONE,
    ("POST", "/api/v1/users/{username}/logout"): frozenset({ADM}),
    ("GET", "/api/v1/users"): frozenset({ADM}),
    ("POST", "/api/v1/users"): frozenset({ADM}),
    ("PATCH", "/api/v1/users/{username}"): frozenset({ADM}),
    ("GET", "/api/v1/api-keys"): frozenset({ADM}),
    ("POST", "/api/v1/api-keys"): frozenset({ADM}),
    ("DELETE", "/api/v1/api-keys/{key_id}"): frozenset({ADM}),
    ("GET", "/api/v1/sites"): HUMANS,
    ("GET", "/api/v1/sites/{site_id}"): HUMANS,
    ("PUT", "/api/v1/sites/{site_id}"): frozenset({ADM}),
    ("DELETE", "/api/v1/sites/{site_id}"): frozenset({ADM}),
    ("GET", "/api/v1/assets"): HUMANS,
    ("GET", "/api/v1/assets/{asset_id}"): HUMANS,
    ("PUT", "/api/v1/assets/{asset_id}"): frozenset({ADM}),
    ("DELETE", "/api/v1/assets/{asset_id}"): frozenset({ADM}),
    ("GET", "/api/v1/devices"): HUMANS,
    ("GET", "/api/v1/devices/{device_id}"): HUMANS,
    ("PUT", "/api/v1/devices/{device_id}"): frozenset({ADM}),
    ("DELETE", "/api/v1/devices/{device_id}"): frozenset({ADM}),
    ("GET", "/api/v1/readings/series"): HUMANS,
    ("GET", "/api/v1/readings/latest"): HUMANS,
    ("GET", "/api/v1/images"): HUMANS,
    ("POST", "/api/v1/images"): frozenset({ADM, DEV}),
    ("GET", "/api/v1/images/review-queue"): HUMANS,
    ("GET", "/api/v1/images/{image_id}"): HUMANS,
    ("GET", "/api/v1/images/{image_id}/original"): HUMANS,
    ("GET", "/api/v1/images/{image_id}/overlay"): HUMANS,
    ("GET", "/api/v1/images/{image_id}/detections"): HUMANS,
    ("GET", "/api/v1/detections"): HUMANS,
    ("GET", "/api/v1/detections/{detection_id}"): HUMANS,
    ("POST", "/api/v1/images/{image_id}/reviews"): frozenset({INS}),
    ("GET", "/api/v1/reviews"): HUMANS,
    ("GET", "/api/v1/alerts"): HUMANS,
    ("GET", "/api/v1/alerts/{alert_id}"): HUMANS,
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): frozenset({OPS, ADM}),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): frozenset({OPS, ADM}),
    ("POST", "/api/v1/alerts/{alert_id}/comment"): frozenset({OPS, ADM}),
    ("GET", "/api/v1/cap/feed.atom"): HUMANS,
    ("GET", "/api/v1/cap/messages/{identifier}"): HUMANS,
    ("GET", "/review"): frozenset({INS}),
}

#: Path parameters filled with harmless values: an allowed role may get 404 or 422,
#: never 401 or 403.
_PARAMS: Final = {
    "site_id": "s1",
    "asset_id": "a1",
    "device_id": "d1",
    "image_id": "nothing-here",
    "detection_id": "999999",
    "alert_id": "999999",
    "key_id": "999999",
    "username": "nobody-at-all",
    "name": "review.css",
    "identifier": "urn:none",
}


def _routes(env: ApiEnv) -> set[tuple[str, str]]:
    app = env.client.app
    found = set()
    for route in app.routes:  # type: ignore[attr-defined]
        assert isinstance(route, APIRoute), f"unexpected route type {type(route).__name__}"
        for method in route.methods or ():
            found.add((method, route.path))
    return found


def test_every_route_has_a_matrix_entry(env: ApiEnv) -> None:
    routes = _routes(env)
    missing = routes - MATRIX.keys()
    stale = MATRIX.keys() - routes
    assert not missing, f"routes without a role-matrix entry: {sorted(missing)}"
    assert not stale, f"matrix entries without a route: {sorted(stale)}"


def _url(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PARAMS[m.group(1)], path)


def _call(env: ApiEnv, method: str, path: str, headers: dict[str, str]) -> int:
    kwargs: dict[str, object] = {"headers": headers}
    if method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = {}
    response = env.client.request(method, _url(path), follow_redirects=False, **kwargs)  # type: ignore[arg-type]
    return int(response.status_code)


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX))
def test_role_matrix(env: ApiEnv, method: str, path: str) -> None:
    seed(env)
    allowed = MATRIX[(method, path)]
    anonymous = _call(env, method, path, {})
    if allowed == PUBLIC:
        # Public means no login; the login form still wants its own CSRF token (403).
        assert anonymous != 401, f"{method} {path} should be public"
        assert anonymous < 500
        return
    # The page sends strangers to its login form; the API answers 401.
    assert anonymous in ({303} if path == "/review" else {401}), (method, path, anonymous)
    assert isinstance(allowed, frozenset)
    for role in Role:
        status = _call(env, method, path, env.headers[role])
        if role in allowed:
            assert status not in {401, 403}, f"{role} refused on {method} {path}: {status}"
            assert status < 500, f"{role} on {method} {path}: {status}"
        else:
            assert status == 403, f"{role} let through on {method} {path}: {status}"
