"""The API's users, API keys and login attempts (migration 0030).

Only hashes are stored: an argon2id PHC string for passwords (computed by the API, which
owns the hashing policy) and the SHA-256 of an API key's random secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg.rows import class_row

from store.api_queries import ConflictError, Conn, NotFoundError, guard


@dataclass(frozen=True, slots=True)
class UserRow:
    username: str
    display_name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: datetime
    password_changed_at: datetime
    tokens_not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: int
    prefix: str
    secret_sha256: str
    name: str
    role: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_USER_COLUMNS = (
    "username, display_name, role, password_hash, disabled, created_at, password_changed_at,"
    " tokens_not_before"
)
_KEY_COLUMNS = (
    "id, prefix, secret_sha256, name, role, created_by, created_at, last_used_at, revoked_at"
)


def create_user(
    conn: Conn, *, username: str, display_name: str, role: str, password_hash: str
) -> UserRow:
    with guard("creating a user"):
        cur = conn.cursor(row_factory=class_row(UserRow))
        row = cur.execute(
            f"""INSERT INTO api_users (username, display_name, role, password_hash)
                VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO NOTHING
                RETURNING {_USER_COLUMNS}""",  # noqa: S608  constant column list
            (username, display_name, role, password_hash),
        ).fetchone()
    if row is None:
        raise ConflictError(f"user {username!r} already exists")
    return row


def get_user(conn: Conn, username: str) -> UserRow | None:
    with guard("reading a user"):
        cur = conn.cursor(row_factory=class_row(UserRow))
        return cur.execute(
            f"SELECT {_USER_COLUMNS} FROM api_users WHERE username = %s",  # noqa: S608
            (username,),
        ).fetchone()


def list_users(conn: Conn) -> list[UserRow]:
    with guard("listing users"):
        cur = conn.cursor(row_factory=class_row(UserRow))
        return cur.execute(
            f"SELECT {_USER_COLUMNS} FROM api_users ORDER BY username"  # noqa: S608
        ).fetchall()


def update_user(
    conn: Conn,
    username: str,
    *,
    display_name: str | None,
    role: str | None,
    disabled: bool | None,
    password_hash: str | None,
    at: datetime,
) -> UserRow:
    """Change the given fields; a new password also ends every session the user had
    (tokens issued until ``at`` are refused)."""
    with guard("changing a user"):
        cur = conn.cursor(row_factory=class_row(UserRow))
        row = cur.execute(
            f"""UPDATE api_users SET
                    display_name = COALESCE(%(display)s, display_name),
                    role = COALESCE(%(role)s, role),
                    disabled = COALESCE(%(disabled)s, disabled),
                    password_hash = COALESCE(%(hash)s, password_hash),
                    password_changed_at = CASE WHEN %(hash)s::text IS NULL
                                               THEN password_changed_at ELSE %(at)s END,
                    tokens_not_before = CASE WHEN %(hash)s::text IS NULL
                                             THEN tokens_not_before ELSE %(at)s END
                WHERE username = %(username)s
                RETURNING {_USER_COLUMNS}""",  # noqa: S608  constant column list
            {
                "display": display_name,
                "role": role,
                "disabled": disabled,
                "hash": password_hash,
                "at": at,
                "username": username,
            },
        ).fetchone()
    if row is None:
        raise NotFoundError(f"user {username!r} does not exist")
    return row


def create_api_key(
    conn: Conn, *, prefix: str, secret_sha256: str, name: str, role: str, created_by: str
) -> ApiKeyRow:
    with guard("creating an API key"):
        cur = conn.cursor(row_factory=class_row(ApiKeyRow))
        row = cur.execute(
            f"""INSERT INTO api_keys (prefix, secret_sha256, name, role, created_by)
                VALUES (%s, %s, %s, %s, %s) RETURNING {_KEY_COLUMNS}""",  # noqa: S608
            (prefix, secret_sha256, name, role, created_by),
        ).fetchone()
    assert row is not None
    return row


def get_api_key(conn: Conn, prefix: str) -> ApiKeyRow | None:
    with guard("reading an API key"):
        cur = conn.cursor(row_factory=class_row(ApiKeyRow))
        return cur.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE prefix = %s",  # noqa: S608
            (prefix,),
        ).fetchone()


def list_api_keys(conn: Conn) -> list[ApiKeyRow]:
    with guard("listing API keys"):
        cur = conn.cursor(row_factory=class_row(ApiKeyRow))
        return cur.execute(
            f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id"  # noqa: S608
        ).fetchall()


def touch_api_key(conn: Conn, key_id: int, at: datetime) -> None:
    with guard("recording an API key's use"):
        conn.execute(
            "UPDATE api_keys SET last_used_at = %s WHERE id = %s "
            "AND (last_used_at IS NULL OR last_used_at < %s - interval '1 minute')",
            (at, key_id, at),
        )


def revoke_api_key(conn: Conn, key_id: int, at: datetime) -> None:
    with guard("revoking an API key"):
        cur = conn.execute(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s",
            (at, key_id),
        )
    if cur.rowcount == 0:
        raise NotFoundError(f"API key {key_id} does not exist")


def end_sessions(conn: Conn, username: str, at: datetime) -> None:
    """Refuse every token of the user issued at or before ``at`` (log out everywhere)."""
    with guard("ending a user's sessions"):
        cur = conn.execute(
            "UPDATE api_users SET tokens_not_before = %s WHERE username = %s", (at, username)
        )
    if cur.rowcount == 0:
        raise NotFoundError(f"user {username!r} does not exist")


def revoke_token(
    conn: Conn, *, jti: str, username: str, at: datetime, expires_at: datetime
) -> None:
    """Refuse one token from now on; rows of tokens that expired meanwhile are pruned."""
    with guard("revoking a token"):
        conn.execute("DELETE FROM api_revoked_tokens WHERE expires_at < %s", (at,))
        conn.execute(
            """INSERT INTO api_revoked_tokens (jti, username, revoked_at, expires_at)
               VALUES (%s, %s, %s, %s) ON CONFLICT (jti) DO NOTHING""",
            (jti, username, at, expires_at),
        )


def token_revoked(conn: Conn, jti: str) -> bool:
    with guard("checking a token"):
        row = conn.execute("SELECT 1 FROM api_revoked_tokens WHERE jti = %s", (jti,)).fetchone()
    return row is not None


def record_login_attempt(
    conn: Conn, *, username: str, client: str, at: datetime, succeeded: bool
) -> None:
    with guard("recording a login attempt"):
        conn.execute(
            "INSERT INTO api_login_attempts (username, client, at, succeeded) "
            "VALUES (%s, %s, %s, %s)",
            (username, client, at, succeeded),
        )


def recent_failures(conn: Conn, *, username: str, client: str, since: datetime) -> tuple[int, int]:
    """Failed logins since ``since`` for this username and for this client address.

    A success resets the username's count: only failures after the last success count.
    """
    with guard("counting login failures"):
        row = conn.execute(
            """SELECT
                 (SELECT count(*) FROM api_login_attempts a
                  WHERE a.username = %(user)s AND a.at >= %(since)s AND NOT a.succeeded
                    AND a.at > COALESCE((SELECT max(s.at) FROM api_login_attempts s
                                         WHERE s.username = %(user)s AND s.succeeded),
                                        '-infinity')),
                 (SELECT count(*) FROM api_login_attempts
                  WHERE client = %(client)s AND at >= %(since)s AND NOT succeeded)""",
            {"user": username, "client": client, "since": since},
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))
