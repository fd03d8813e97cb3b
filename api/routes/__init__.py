"""Routers of ``/api/v1`` and the review page; ``api.app`` mounts them."""

from __future__ import annotations

from typing import Any, Final

from api.models import ErrorOut

#: Error responses every authenticated route can give, for the OpenAPI document.
AUTH_ERRORS: Final[dict[int | str, dict[str, Any]]] = {
    401: {"model": ErrorOut, "description": "not authenticated, or the token expired"},
    403: {"model": ErrorOut, "description": "this role may not do this"},
}
NOT_FOUND: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": ErrorOut, "description": "no such resource"},
}
CONFLICT: Final[dict[int | str, dict[str, Any]]] = {
    409: {"model": ErrorOut, "description": "refused by the current state"},
}
