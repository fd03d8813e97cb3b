"""Typed dependencies: the app's state, a pooled connection, and who is asking.

Routes declare who may call them with the ``Annotated`` aliases at the bottom
(``AdminUser``, ``Reader``, ...). A caller proves who it is with, in this order:

1. ``Authorization: Bearer <token>`` from ``POST /api/v1/auth/token``, or
   ``Authorization: Bearer mk_...`` / ``X-API-Key: mk_...`` (an API key);
2. the review page's session cookie, which for any unsafe method must come with the
   ``X-CSRF-Token`` header the page was rendered with (double submit, bound to the
   session token by HMAC).

A disabled user's tokens stop working at once: each request reads the user's row.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from fastapi import Depends, HTTPException, Request, status

from api.metrics import ApiMetrics
from api.pool import Conn, ConnectionPool
from api.security import (
    HUMANS,
    Clock,
    Principal,
    Role,
    TokenError,
    TokenSigner,
    split_api_key,
)
from core.settings import ApiSettings
from store import api_auth

_log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "mamori_session"
CSRF_HEADER: Final = "X-CSRF-Token"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class AppState:
    """Everything a request needs, built once by ``create_app``; no module globals."""

    settings: ApiSettings
    pool: ConnectionPool
    signer: TokenSigner
    clock: Clock
    metrics: ApiMetrics
    blob_dir: Path


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.mamori
    return state


State = Annotated[AppState, Depends(get_state)]


def get_conn(state: State) -> Iterator[Conn]:
    with state.pool.connection() as conn:
        yield conn


Db = Annotated[Conn, Depends(get_conn)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def authenticate(request: Request, state: State, conn: Db) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    api_key = request.headers.get("x-api-key")
    if api_key or (scheme.lower() == "bearer" and credential.startswith("mk_")):
        return _from_api_key(state, conn, api_key or credential.strip())
    if scheme.lower() == "bearer" and credential:
        return _from_token(state, conn, credential.strip(), via="token")
    if header:
        raise _unauthorized("unsupported authorization scheme")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal = _from_token(state, conn, cookie, via="cookie")
        if request.method not in _SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent, state.signer.csrf_for(cookie)):
                raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
        return principal
    raise _unauthorized("authentication required")


def _from_token(state: AppState, conn: Conn, token: str, *, via: str) -> Principal:
    try:
        claims = state.signer.verify(token)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from exc
    user = api_auth.get_user(conn, claims.subject)
    if user is None or user.disabled:
        raise _unauthorized("user is disabled or gone")
    # Logged out (this token, or everywhere), or the password changed since it was issued.
    ended = user.tokens_not_before is not None and claims.issued_at <= user.tokens_not_before
    if ended or api_auth.token_revoked(conn, claims.token_id):
        raise _unauthorized("token revoked")
    # The role is read from the row, not the token: a demotion applies at once.
    return Principal(user.username, Role(user.role), via=via, token=token)


def _from_api_key(state: AppState, conn: Conn, key: str) -> Principal:
    parts = split_api_key(key)
    if parts is None:
        raise _unauthorized("malformed API key")
    prefix, digest = parts
    row = api_auth.get_api_key(conn, prefix)
    if row is None or row.revoked_at is not None:
        raise _unauthorized("unknown or revoked API key")
    if not hmac.compare_digest(row.secret_sha256, digest):
        raise _unauthorized("unknown or revoked API key")
    api_auth.touch_api_key(conn, row.id, state.clock())
    conn.commit()
    return Principal(f"key:{row.name}", Role(row.role), via="api_key")


Authenticated = Annotated[Principal, Depends(authenticate)]


class Allow:
    """A dependency that lets through only the given roles (403 for the others)."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    def __call__(self, principal: Authenticated) -> Principal:
        if principal.role not in self.roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"the {principal.role.value} role may not do this"
            )
        return principal


AnyRole = Annotated[Principal, Depends(Allow(*Role))]
Reader = Annotated[Principal, Depends(Allow(*HUMANS))]
AdminUser = Annotated[Principal, Depends(Allow(Role.ADMIN))]
#: Only an engineer assigns grades and decides on findings (MLIT: not the model).
InspectorUser = Annotated[Principal, Depends(Allow(Role.INSPECTOR))]
#: The disaster centre acknowledges and resolves alerts; admins may too.
OperatorUser = Annotated[Principal, Depends(Allow(Role.OPERATOR, Role.ADMIN))]
#: Photos come from devices (drone uploaders) or an admin's backfill.
Uploader = Annotated[Principal, Depends(Allow(Role.DEVICE, Role.ADMIN))]
