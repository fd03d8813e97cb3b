"""The API against a real PostgreSQL: its own throwaway database, a fake clock, a user
and a token per role. Data tables are emptied before each test; users stay."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.app import create_app
from api.security import Role, hash_password
from core.settings import ApiSettings, DatabaseSettings
from store import api_auth
from tests.support import migrated_database

Conn = psycopg.Connection[tuple[object, ...]]
PASSWORD = "correct horse battery staple"
SECRET = "test-secret-" + "k" * 40
UPLOAD_LIMIT = 64 * 1024


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def reset(self) -> None:
        self.now = self.start


@dataclass
class ApiEnv:
    url: str
    blob_dir: Path
    clock: FakeClock
    client: TestClient
    headers: dict[Role, dict[str, str]]
    settings: ApiSettings

    def conn(self) -> Conn:
        return psycopg.connect(self.url)


@pytest.fixture(scope="session")
def api_database_url(pg_admin_url: str) -> Iterator[str]:
    with migrated_database(pg_admin_url, "mamori_api") as url:
        yield url


def user_name(role: Role) -> str:
    return f"{role.value}-user"


@pytest.fixture(scope="session")
def api_env(api_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    # A base time near now, so that readings land in existing partitions; tests only
    # ever compare against this clock, never against the wall clock.
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    blob_dir = tmp_path_factory.mktemp("blobs")
    settings = ApiSettings(
        secret_key=SecretStr(SECRET),
        blob_dir=blob_dir,
        max_upload_bytes=UPLOAD_LIMIT,
        token_ttl_s=3600,
        database=DatabaseSettings(url=SecretStr(api_database_url), pool_size=4),
    )
    app = create_app(settings, api_database_url, clock=clock)
    hashed = hash_password(PASSWORD)
    with psycopg.connect(api_database_url) as conn:
        for role in Role:
            api_auth.create_user(
                conn,
                username=user_name(role),
                display_name=role.value,
                role=role.value,
                password_hash=hashed,
            )
        conn.commit()
    with TestClient(app, raise_server_exceptions=True) as client:
        headers: dict[Role, dict[str, str]] = {}
        for role in Role:
            response = client.post(
                "/api/v1/auth/token", json={"username": user_name(role), "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            headers[role] = {"Authorization": f"Bearer {response.json()['access_token']}"}
        yield ApiEnv(api_database_url, blob_dir, clock, client, headers, settings)


_DATA_TABLES = (
    "api_login_attempts, api_keys, reviews, detections, images, alert_events, alerts, "
    "readings, devices, assets, sites"
)


@pytest.fixture
def env(api_env: ApiEnv) -> ApiEnv:
    api_env.clock.reset()
    api_env.client.cookies.clear()
    with psycopg.connect(api_env.url) as conn:
        conn.execute(f"TRUNCATE {_DATA_TABLES} RESTART IDENTITY CASCADE")
        conn.execute("TRUNCATE api_revoked_tokens")
        conn.execute("UPDATE api_users SET disabled = false, tokens_not_before = NULL")
        conn.commit()
    return api_env


def png_bytes(width: int = 320, height: int = 240, seed: int = 1) -> bytes:
    """A small, compressible test photo (gradient with a dark line), well under the limit."""
    ramp = np.linspace(90, 200, width, dtype=np.float32)
    pixels = np.repeat(np.tile(ramp, (height, 1))[:, :, None], 3, axis=2).astype(np.uint8)
    cv2.line(pixels, (10, 10 + seed * 20), (width - 10, height - 30), (30, 30, 30), 3)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    return bytes(encoded.tobytes())


@dataclass(frozen=True)
class Seeded:
    image_id: str
    other_image_id: str
    detections: list[int]
    other_detection: int
    alert_id: int


def seed(env: ApiEnv) -> Seeded:
    """A site, a bridge, a device, two photos with detections, an open alert."""
    admin = env.headers[Role.ADMIN]
    client = env.client
    assert client.put("/api/v1/sites/s1", json={"name": "Site 1"}, headers=admin).is_success
    assert client.put(
        "/api/v1/assets/a1",
        json={"site_id": "s1", "kind": "bridge", "name": "Bridge 1", "name_ja": "一号橋"},
        headers=admin,
    ).is_success
    assert client.put(
        "/api/v1/devices/d1",
        json={"site_id": "s1", "asset_id": "a1", "kind": "camera"},
        headers=admin,
    ).is_success
    ids = []
    for n in (1, 2):
        response = client.post(
            "/api/v1/images?asset_id=a1&device_id=d1",
            content=png_bytes(seed=n),
            headers={**env.headers[Role.DEVICE], "Content-Type": "image/png"},
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    with env.conn() as conn:
        detections = []
        for image_id, rows in (
            (
                ids[0],
                [
                    ("crack", 0.9, 10, 10, 200, 60, 0.35),
                    ("corrosion", 0.4, 50, 100, 120, 200, None),
                ],
            ),
            (ids[1], [("spalling", 0.8, 20, 20, 100, 100, None)]),
        ):
            for damage, conf, x1, y1, x2, y2, width in rows:
                row = conn.execute(
                    """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2,
                           y2, max_width_mm, length_mm, flagged_reason, model_name, model_version)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 120, 'test', 'm', '1')
                       RETURNING id""",
                    (image_id, damage, conf, x1, y1, x2, y2, width),
                ).fetchone()
                assert row is not None
                detections.append(int(str(row[0])))
        conn.execute("UPDATE images SET status = 'flagged'")
        alert = conn.execute(
            """INSERT INTO alerts (rule_id, asset_id, level, state, title)
               VALUES ('river-level', 'a1', 3, 'open', '避難判断水位') RETURNING id"""
        ).fetchone()
        assert alert is not None
        conn.commit()
    return Seeded(ids[0], ids[1], detections[:2], detections[2], int(str(alert[0])))


def page_login(env: ApiEnv, username: str = "inspector-user") -> tuple[str, str]:
    """Log in through the review page's form; returns the login's Set-Cookie header and
    the page's CSRF token for writes."""
    page = env.client.get("/review/login")
    csrf_login = page.text.split('name="csrf" value="')[1].split('"')[0]
    response = env.client.post(
        "/review/login",
        data={"username": username, "password": PASSWORD, "csrf": csrf_login},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    html = env.client.get("/review").text
    return response.headers["set-cookie"], html.split('name="csrf-token" content="')[1].split('"')[
        0
    ]
