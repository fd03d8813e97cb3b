"""Login tokens, the caller's identity, users and API keys (admins manage both)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from api.deps import AdminUser, AnyRole, Db, State
from api.login import LoginRefusedError, login
from api.models import (
    ApiKeyCreatedOut,
    ApiKeyIn,
    ApiKeyOut,
    ErrorOut,
    MeOut,
    TokenOut,
    TokenRequest,
    UserIn,
    UserOut,
    UserPatch,
)
from api.routes import AUTH_ERRORS, CONFLICT, NOT_FOUND
from api.security import hash_password, new_api_key
from store import api_auth

router = APIRouter(prefix="/api/v1", tags=["auth"])


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.post(
    "/auth/token",
    summary="Log in with a password; returns a bearer token",
    responses={
        401: {"model": ErrorOut, "description": "wrong username or password"},
        429: {"model": ErrorOut, "description": "too many failed logins (see Retry-After)"},
    },
)
def issue_token(body: TokenRequest, request: Request, state: State, conn: Db) -> TokenOut:
    try:
        result = login(state, conn, body.username, body.password, client_address(request))
    except LoginRefusedError as exc:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        raise HTTPException(exc.status_code, exc.detail, headers=headers) from exc
    return TokenOut(
        access_token=result.token, expires_at=result.claims.expires_at, role=result.claims.role
    )


@router.post(
    "/auth/logout",
    summary="End this session (everywhere=true: every session of the user)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, 400: {"model": ErrorOut, "description": "an API key"}},
)
def logout(principal: AnyRole, state: State, conn: Db, everywhere: bool = False) -> Response:
    if principal.token is None:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            "an API key is not a session: an admin revokes it with DELETE /api-keys/{id}",
        )
    claims = state.signer.verify(principal.token)
    now = state.clock()
    if everywhere:
        api_auth.end_sessions(conn, principal.name, now)
    api_auth.revoke_token(
        conn, jti=claims.token_id, username=principal.name, at=now, expires_at=claims.expires_at
    )
    conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/users/{username}/logout",
    summary="End every session of a user (a lost tablet, a leaked token)",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def end_user_sessions(username: str, _admin: AdminUser, conn: Db, state: State) -> Response:
    api_auth.end_sessions(conn, username[:63], state.clock())
    conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", summary="Who the credentials belong to", responses=AUTH_ERRORS)
def me(principal: AnyRole) -> MeOut:
    return MeOut(name=principal.name, role=principal.role, via=principal.via)  # type: ignore[arg-type]


@router.get("/users", summary="List users", responses=AUTH_ERRORS)
def list_users(_admin: AdminUser, conn: Db) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in api_auth.list_users(conn)]


@router.post(
    "/users",
    summary="Create a user",
    status_code=status.HTTP_201_CREATED,
    responses={**AUTH_ERRORS, **CONFLICT},
)
def create_user(body: UserIn, _admin: AdminUser, conn: Db) -> UserOut:
    row = api_auth.create_user(
        conn,
        username=body.username,
        display_name=body.display_name,
        role=body.role.value,
        password_hash=hash_password(body.password),
    )
    conn.commit()
    return UserOut.model_validate(row)


@router.patch(
    "/users/{username}",
    summary="Change a user's name, role, password, or disable them",
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def update_user(
    username: str, body: UserPatch, _admin: AdminUser, conn: Db, state: State
) -> UserOut:
    row = api_auth.update_user(
        conn,
        username[:63],
        display_name=body.display_name,
        role=body.role.value if body.role else None,
        disabled=body.disabled,
        password_hash=hash_password(body.password) if body.password else None,
        at=state.clock(),
    )
    conn.commit()
    return UserOut.model_validate(row)


@router.get("/api-keys", summary="List API keys (never their secrets)", responses=AUTH_ERRORS)
def list_api_keys(_admin: AdminUser, conn: Db) -> list[ApiKeyOut]:
    return [ApiKeyOut.model_validate(k) for k in api_auth.list_api_keys(conn)]


@router.post(
    "/api-keys",
    summary="Create an API key for a machine; the key is shown only in this response",
    status_code=status.HTTP_201_CREATED,
    responses=AUTH_ERRORS,
)
def create_api_key(body: ApiKeyIn, admin: AdminUser, conn: Db) -> ApiKeyCreatedOut:
    fresh = new_api_key()
    row = api_auth.create_api_key(
        conn,
        prefix=fresh.prefix,
        secret_sha256=fresh.secret_sha256,
        name=body.name,
        role=body.role.value,
        created_by=admin.name,
    )
    conn.commit()
    return ApiKeyCreatedOut.model_validate(
        {**ApiKeyOut.model_validate(row).model_dump(), "key": fresh.key}
    )


@router.delete(
    "/api-keys/{key_id}",
    summary="Revoke an API key",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={**AUTH_ERRORS, **NOT_FOUND},
)
def revoke_api_key(
    key_id: Annotated[int, Path(ge=1, le=2**63 - 1)], _admin: AdminUser, conn: Db, state: State
) -> Response:
    api_auth.revoke_api_key(conn, key_id, state.clock())
    conn.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
