"""Password login with brute-force limiting, shared by the API and the review page.

Failures are counted in ``api_login_attempts`` over a sliding window, per username
(5: guessing one account) and per client address (30: spraying many accounts). Over
either limit the login is refused with 429 before the password is even checked, so a
guesser learns nothing more until the window slides. A success clears the username's
count. The client is the TCP peer: behind a reverse proxy run uvicorn with
``--proxy-headers`` and a trusted ``--forwarded-allow-ips`` so the peer is the real one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from api.deps import AppState
from api.pool import Conn
from api.security import Role, TokenClaims, verify_password
from store import api_auth

_log = logging.getLogger(__name__)

WINDOW: Final = timedelta(minutes=15)
MAX_FAILURES_PER_USER: Final = 5
MAX_FAILURES_PER_CLIENT: Final = 30


class LoginRefusedError(Exception):
    def __init__(self, status_code: int, detail: str, retry_after_s: int | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    claims: TokenClaims


def login(state: AppState, conn: Conn, username: str, password: str, client: str) -> LoginResult:
    now = state.clock()
    username = username.strip().lower()[:63]
    by_user, by_client = api_auth.recent_failures(
        conn, username=username, client=client, since=now - WINDOW
    )
    if by_user >= MAX_FAILURES_PER_USER or by_client >= MAX_FAILURES_PER_CLIENT:
        state.metrics.logins.labels("limited").inc()
        _log.warning("login for %s from %s refused: too many failures", username, client)
        raise LoginRefusedError(
            429, "too many failed logins; try again later", int(WINDOW.total_seconds())
        )
    user = api_auth.get_user(conn, username)
    ok = verify_password(user.password_hash if user else None, password)
    ok = ok and user is not None and not user.disabled
    api_auth.record_login_attempt(conn, username=username, client=client, at=now, succeeded=ok)
    conn.commit()
    if not ok or user is None:
        state.metrics.logins.labels("failed").inc()
        _log.info("failed login for %s from %s", username, client)
        raise LoginRefusedError(401, "wrong username or password")
    state.metrics.logins.labels("ok").inc()
    token, claims = state.signer.issue(user.username, Role(user.role))
    return LoginResult(token, claims)
