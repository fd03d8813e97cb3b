"""Who is asking: roles, password hashing, signed login tokens and API keys.

Passwords are hashed with argon2id (``argon2-cffi``, its RFC 9106 low-memory profile).
A login token is ``v1.<payload>.<signature>``: the payload is base64url JSON
(``sub``, ``role``, ``iat``, ``exp``), the signature HMAC-SHA256 of ``v1.<payload>``
under ``settings.secret_key``. No JWT library: one algorithm, fixed here, so there is
no ``alg`` header to confuse. An API key is ``mk_<prefix>_<secret>``; the database
keeps the prefix and SHA-256 of the secret.

Time comes from an injected clock so that expiry is testable without sleeping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


class Role(StrEnum):
    ADMIN = "admin"
    INSPECTOR = "inspector"
    OPERATOR = "operator"
    VIEWER = "viewer"
    DEVICE = "device"


#: People who read what Mamori knows; a device only sends.
HUMANS: Final = frozenset({Role.ADMIN, Role.INSPECTOR, Role.OPERATOR, Role.VIEWER})


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: a user (by token or page cookie) or an API key."""

    name: str
    role: Role
    via: str  # "token", "cookie" or "api_key"
    token: str | None = None


MIN_PASSWORD_LENGTH: Final = 12

_hasher = PasswordHasher()
#: Verified against when the user does not exist, so that a login for an unknown name
#: takes as long as one with a wrong password (no user enumeration by timing).
_DUMMY_HASH: Final = _hasher.hash("mamori-dummy-password-for-timing")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


# --------------------------------------------------------------------------- tokens

_TOKEN_VERSION: Final = "v1"  # noqa: S105  a format tag, not a secret


class TokenError(Exception):
    """A token that is malformed, forged or expired; the message is safe to show."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    subject: str
    role: Role
    issued_at: datetime
    expires_at: datetime
    token_id: str = ""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret: str, ttl: timedelta, clock: Clock) -> None:
        self._key = hashlib.sha256(b"mamori-token\x00" + secret.encode()).digest()
        self._csrf_key = hashlib.sha256(b"mamori-csrf\x00" + secret.encode()).digest()
        self._ttl = ttl
        self._clock = clock

    def issue(self, subject: str, role: Role) -> tuple[str, TokenClaims]:
        now = self._clock()
        # Milliseconds: a token issued just after a password change must not look as
        # old as the change (tokens issued at or before it are refused).
        issued_ms = int(now.timestamp() * 1000)
        issued = datetime.fromtimestamp(issued_ms / 1000, UTC)
        claims = TokenClaims(subject, role, issued, now + self._ttl, token_id=secrets.token_hex(16))
        payload = json.dumps(
            {
                "sub": subject,
                "role": role.value,
                "iat": int(now.timestamp()),
                "iat_ms": issued_ms,
                "exp": int(claims.expires_at.timestamp()),
                "jti": claims.token_id,
            },
            separators=(",", ":"),
        ).encode()
        body = f"{_TOKEN_VERSION}.{_b64(payload)}"
        return f"{body}.{self._sign(body)}", claims

    def verify(self, token: str) -> TokenClaims:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_VERSION or len(token) > 1024:
            raise TokenError("malformed token")
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(body), parts[2]):
            raise TokenError("bad token signature")
        try:
            data = json.loads(_unb64(parts[1]))
            claims = TokenClaims(
                subject=str(data["sub"]),
                role=Role(data["role"]),
                issued_at=datetime.fromtimestamp(int(data["iat_ms"]) / 1000, UTC),
                expires_at=datetime.fromtimestamp(int(data["exp"]), UTC),
                token_id=str(data["jti"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenError("malformed token") from exc
        if self._clock() >= claims.expires_at:
            raise TokenError("token expired")
        return claims

    def csrf_for(self, token: str) -> str:
        """The page's anti-CSRF value: bound to the session token, so never guessable."""
        return _b64(hmac.new(self._csrf_key, token.encode(), hashlib.sha256).digest())

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())


# --------------------------------------------------------------------------- API keys

API_KEY_PREFIX: Final = "mk_"


@dataclass(frozen=True, slots=True)
class NewApiKey:
    key: str
    prefix: str
    secret_sha256: str


def new_api_key() -> NewApiKey:
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
    secret = secrets.token_urlsafe(32)
    return NewApiKey(
        key=f"{API_KEY_PREFIX}{prefix}_{secret}",
        prefix=prefix,
        secret_sha256=hashlib.sha256(secret.encode()).hexdigest(),
    )


def split_api_key(key: str) -> tuple[str, str] | None:
    """(prefix, SHA-256 of the secret), or None for something that is not an API key."""
    if not key.startswith(API_KEY_PREFIX) or len(key) > 200:
        return None
    prefix, sep, secret = key[len(API_KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != 8 or not secret:
        return None
    return prefix, hashlib.sha256(secret.encode()).hexdigest()
