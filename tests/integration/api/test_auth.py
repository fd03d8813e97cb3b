"""Login, token expiry on an injected clock, brute-force limiting, API keys, users."""

from __future__ import annotations

import uuid
from datetime import timedelta

from api.security import Role, TokenSigner
from tests.integration.api.conftest import PASSWORD, ApiEnv, page_login, user_name


def _login(env: ApiEnv, username: str, password: str) -> int:
    response = env.client.post(
        "/api/v1/auth/token", json={"username": username, "password": password}
    )
    return int(response.status_code)


def test_login_issues_a_token_that_identifies_the_user(env: ApiEnv) -> None:
    response = env.client.post(
        "/api/v1/auth/token", json={"username": "inspector-user", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["role"] == "inspector"
    me = env.client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert me.json() == {"name": "inspector-user", "role": "inspector", "via": "token"}


def test_wrong_password_and_unknown_user_look_the_same(env: ApiEnv) -> None:
    wrong = env.client.post(
        "/api/v1/auth/token", json={"username": "viewer-user", "password": "nope-nope-nope"}
    )
    unknown = env.client.post(
        "/api/v1/auth/token", json={"username": "nobody-here", "password": "nope-nope-nope"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_token_expires_on_the_injected_clock(env: ApiEnv) -> None:
    headers = env.headers[Role.VIEWER]
    assert env.client.get("/api/v1/sites", headers=headers).status_code == 200
    env.clock.advance(timedelta(seconds=3599))
    assert env.client.get("/api/v1/sites", headers=headers).status_code == 200
    env.clock.advance(timedelta(seconds=1))
    response = env.client.get("/api/v1/sites", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"] == "token expired"
    assert response.headers["www-authenticate"] == "Bearer"


def test_forged_and_foreign_tokens_are_refused(env: ApiEnv) -> None:
    token = env.headers[Role.ADMIN]["Authorization"].removeprefix("Bearer ")
    version, payload, signature = token.split(".")
    forged_role = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    foreign, _ = TokenSigner("another-secret-" + "z" * 40, timedelta(hours=1), env.clock).issue(
        "admin-user", Role.ADMIN
    )
    for bad in (
        f"{version}.{forged_role}.{signature}",
        f"{version}.{payload}.{signature[:-2]}xx",
        foreign,
        "v2.abc.def",
        "not-a-token",
        "",
    ):
        response = env.client.get("/api/v1/sites", headers={"Authorization": f"Bearer {bad}"})
        assert response.status_code == 401, bad


def test_disabled_user_is_locked_out_at_once(env: ApiEnv) -> None:
    headers = env.headers[Role.OPERATOR]
    admin = env.headers[Role.ADMIN]
    response = env.client.patch(
        f"/api/v1/users/{user_name(Role.OPERATOR)}", json={"disabled": True}, headers=admin
    )
    assert response.status_code == 200
    assert env.client.get("/api/v1/alerts", headers=headers).status_code == 401
    assert _login(env, user_name(Role.OPERATOR), PASSWORD) == 401


def test_brute_force_is_limited_and_the_window_slides(env: ApiEnv) -> None:
    name = user_name(Role.VIEWER)
    for _ in range(5):
        assert _login(env, name, "wrong password!") == 401
    response = env.client.post("/api/v1/auth/token", json={"username": name, "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    # Other accounts from the same client are still allowed (below the client limit).
    assert _login(env, user_name(Role.INSPECTOR), PASSWORD) == 200
    env.clock.advance(timedelta(minutes=16))
    assert _login(env, name, PASSWORD) == 200


def test_a_success_resets_the_count(env: ApiEnv) -> None:
    name = user_name(Role.VIEWER)
    for _ in range(4):
        assert _login(env, name, "wrong password!") == 401
    assert _login(env, name, PASSWORD) == 200
    for _ in range(4):
        assert _login(env, name, "wrong password!") == 401
    assert _login(env, name, PASSWORD) == 200


def test_many_accounts_from_one_client_are_limited(env: ApiEnv) -> None:
    for n in range(30):
        assert _login(env, f"spray-{n}", "wrong password!") == 401
    assert _login(env, user_name(Role.VIEWER), PASSWORD) == 429


def test_api_keys_are_shown_once_work_and_can_be_revoked(env: ApiEnv) -> None:
    admin = env.headers[Role.ADMIN]
    created = env.client.post(
        "/api/v1/api-keys", json={"name": "uploader", "role": "device"}, headers=admin
    )
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("mk_")
    listed = env.client.get("/api/v1/api-keys", headers=admin).json()
    assert key not in str(listed)
    for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
        me = env.client.get("/api/v1/auth/me", headers=headers)
        assert me.json() == {"name": "key:uploader", "role": "device", "via": "api_key"}
    assert env.client.get("/api/v1/auth/me", headers={"X-API-Key": key + "x"}).status_code == 401
    key_id = created.json()["id"]
    assert env.client.delete(f"/api/v1/api-keys/{key_id}", headers=admin).status_code == 204
    assert env.client.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401


def test_admin_creates_users_with_strong_passwords_only(env: ApiEnv) -> None:
    admin = env.headers[Role.ADMIN]
    weak = env.client.post(
        "/api/v1/users",
        json={"username": "sato", "role": "inspector", "password": "short"},
        headers=admin,
    )
    assert weak.status_code == 422
    body = {"username": "sato", "role": "inspector", "password": "a long enough passphrase"}
    assert env.client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    assert env.client.post("/api/v1/users", json=body, headers=admin).status_code == 409
    assert _login(env, "sato", "a long enough passphrase") == 200
    listed = env.client.get("/api/v1/users", headers=admin).json()
    assert all("password" not in str(u.keys()) for u in listed)
    with env.conn() as conn:
        conn.execute("DELETE FROM api_users WHERE username = 'sato'")
        conn.commit()


def _token(env: ApiEnv, username: str, password: str = PASSWORD) -> dict[str, str]:
    response = env.client.post(
        "/api/v1/auth/token", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _status(env: ApiEnv, headers: dict[str, str]) -> int:
    return int(env.client.get("/api/v1/auth/me", headers=headers).status_code)


def _new_user(env: ApiEnv) -> str:
    name = f"tablet-{uuid.uuid4().hex[:8]}"
    response = env.client.post(
        "/api/v1/users",
        json={"username": name, "role": "inspector", "password": PASSWORD},
        headers=env.headers[Role.ADMIN],
    )
    assert response.status_code == 201, response.text
    return name


def test_logout_ends_this_session_only(env: ApiEnv) -> None:
    name = user_name(Role.VIEWER)
    first, second = _token(env, name), _token(env, name)
    assert env.client.post("/api/v1/auth/logout", headers=first).status_code == 204
    response = env.client.get("/api/v1/auth/me", headers=first)
    assert response.status_code == 401
    assert response.json()["detail"] == "token revoked"
    assert _status(env, second) == 200
    # Logging out twice is harmless; a revoked token cannot log out again.
    assert env.client.post("/api/v1/auth/logout", headers=first).status_code == 401


def test_logout_everywhere_and_a_new_password_end_every_session(env: ApiEnv) -> None:
    name = _new_user(env)
    phone, tablet = _token(env, name), _token(env, name)
    response = env.client.post("/api/v1/auth/logout?everywhere=true", headers=phone)
    assert response.status_code == 204
    assert (_status(env, phone), _status(env, tablet)) == (401, 401)
    env.clock.advance(timedelta(seconds=1))
    fresh = _token(env, name)
    assert _status(env, fresh) == 200
    # An admin sets a new password: sessions opened with the old one end at once.
    env.clock.advance(timedelta(seconds=1))
    response = env.client.patch(
        f"/api/v1/users/{name}",
        json={"password": "a brand new passphrase"},
        headers=env.headers[Role.ADMIN],
    )
    assert response.status_code == 200
    assert _status(env, fresh) == 401
    env.clock.advance(timedelta(seconds=1))
    assert _status(env, _token(env, name, "a brand new passphrase")) == 200


def test_an_admin_ends_every_session_of_a_user(env: ApiEnv) -> None:
    name = _new_user(env)
    lost_tablet = _token(env, name)
    admin = env.headers[Role.ADMIN]
    assert env.client.post(f"/api/v1/users/{name}/logout", headers=admin).status_code == 204
    assert _status(env, lost_tablet) == 401
    assert env.client.post("/api/v1/users/nobody-here/logout", headers=admin).status_code == 404
    not_admin = env.headers[Role.OPERATOR]
    assert env.client.post(f"/api/v1/users/{name}/logout", headers=not_admin).status_code == 403


def test_an_api_key_cannot_log_out(env: ApiEnv) -> None:
    created = env.client.post(
        "/api/v1/api-keys",
        json={"name": "uploader", "role": "device"},
        headers=env.headers[Role.ADMIN],
    )
    key = {"X-API-Key": created.json()["key"]}
    response = env.client.post("/api/v1/auth/logout", headers=key)
    assert response.status_code == 400
    assert _status(env, key) == 200


def test_the_review_page_logout_revokes_the_session_token(env: ApiEnv) -> None:
    _, csrf = page_login(env)
    session = env.client.cookies["mamori_session"]
    response = env.client.post("/review/logout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    env.client.cookies.clear()
    # A copy of the cookie kept by someone else is no longer a session.
    assert _status(env, {"Authorization": f"Bearer {session}"}) == 401
