"""Upload limits, malformed and hostile photos, path traversal, SQL injection in every
filter, CSRF on the page's session, and the security headers."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.blobs import MAX_PIXELS, BlobError, ImageRejectedError, blob_path, probe
from api.security import Role
from tests.integration.api.conftest import (
    PASSWORD,
    UPLOAD_LIMIT,
    ApiEnv,
    page_login,
    png_bytes,
    seed,
)

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE images; --",
    "a1' UNION SELECT password_hash FROM api_users --",
    "1; SELECT pg_sleep(5)",
    "%' OR 1=1 --",
    "\\x00",
    "\u0000",
    "${jndi:ldap://x}",
    "../../../etc/passwd",
    "ｓ１",
    "a" * 5000,
]


def _upload(env: ApiEnv, body: bytes | Iterator[bytes], content_type: str = "image/png") -> int:
    response = env.client.post(
        "/api/v1/images",
        content=body,
        headers={**env.headers[Role.DEVICE], "Content-Type": content_type},
    )
    return int(response.status_code)


def _png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
    )


def test_oversized_uploads_are_refused(env: ApiEnv) -> None:
    assert _upload(env, b"\x89PNG" + b"\0" * UPLOAD_LIMIT) == 413

    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit must hold while the body streams.
        for _ in range(UPLOAD_LIMIT // 4096 + 2):
            yield b"\0" * 4096

    assert _upload(env, chunks()) == 413
    big_json = {"name": "x" * 300_000}
    response = env.client.put("/api/v1/sites/s1", json=big_json, headers=env.headers[Role.ADMIN])
    assert response.status_code == 413


def test_malformed_and_hostile_photos_are_refused(env: ApiEnv) -> None:
    assert _upload(env, b"GIF89a" + b"\0" * 100, "image/png") == 415
    assert _upload(env, png_bytes()[:60]) == 415  # truncated: header fine, no pixels
    assert _upload(env, b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\0" * 50, "image/jpeg") == 415
    assert _upload(env, png_bytes(), "text/plain") == 415
    assert _upload(env, b"", "image/png") == 422
    # A decompression bomb: a tiny file whose header promises 50 000 × 50 000 pixels.
    bomb = _png_header(50_000, 50_000) + b"\0" * 64
    assert _upload(env, bomb) == 415
    with pytest.raises(ImageRejectedError, match="megapixels"):
        probe(bomb)
    assert MAX_PIXELS < 50_000 * 50_000


@pytest.mark.parametrize(
    "key",
    [
        "../secret",
        "photos/../../secret",
        "/etc/passwd",
        "photos//x",
        "photos\\..\\x",
        ".hidden",
        "a/./b",
        "a\0b",
        "photos/%2e%2e/x",
        "",
    ],
)
def test_blob_keys_cannot_leave_the_blob_directory(tmp_path: Path, key: str) -> None:
    with pytest.raises(BlobError):
        blob_path(tmp_path, key)


def test_a_symlink_inside_the_blob_directory_cannot_lead_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("no")
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    (blobs / "link").symlink_to(outside)
    with pytest.raises(BlobError):
        blob_path(blobs, "link/secret.txt")


def test_a_poisoned_blob_key_in_the_database_serves_nothing(env: ApiEnv) -> None:
    seeded = seed(env)
    with env.conn() as conn:
        conn.execute(
            "UPDATE images SET blob_key = '../../../../etc/passwd' WHERE id = %s",
            (seeded.image_id,),
        )
        conn.commit()
    viewer = env.headers[Role.VIEWER]
    for suffix in ("original", "overlay"):
        response = env.client.get(f"/api/v1/images/{seeded.image_id}/{suffix}", headers=viewer)
        assert response.status_code == 404
        assert b"root:" not in response.content


def _filters(env: ApiEnv) -> list[tuple[str, str]]:
    doc = env.client.get("/api/v1/openapi.json", headers=env.headers[Role.ADMIN]).json()
    found = []
    for path, ops in doc["paths"].items():
        get = ops.get("get")
        if get is None or "{" in path:
            continue
        for param in get.get("parameters", []):
            if param["in"] == "query":
                found.append((path, param["name"]))
    return found


def test_sql_injection_in_every_filter_is_harmless(env: ApiEnv) -> None:
    seed(env)
    filters = _filters(env)
    assert len(filters) >= 25
    headers = env.headers[Role.ADMIN]
    for path, name in filters:
        for attack in INJECTIONS:
            response = env.client.get(path, params={name: attack}, headers=headers)
            assert response.status_code < 500, (path, name, attack, response.text)
            if response.status_code == 200 and path != "/metrics":
                body = response.json()
                assert "password_hash" not in str(body)
    # Path parameters too.
    for attack in INJECTIONS[:5]:
        for template in ("/api/v1/sites/{}", "/api/v1/images/{}", "/api/v1/users/{}"):
            response = env.client.get(template.format(attack), headers=headers)
            assert response.status_code < 500
    with env.conn() as conn:
        row = conn.execute("SELECT count(*) FROM images").fetchone()
    assert row is not None
    assert row[0] == 2


def test_the_session_cookie_needs_the_csrf_header_for_writes(env: ApiEnv) -> None:
    seeded = seed(env)
    client = env.client
    cookie_header, token = page_login(env)
    assert "mamori_session" in client.cookies
    assert "HttpOnly" in cookie_header
    assert "SameSite=strict" in cookie_header or "SameSite=Strict" in cookie_header
    url = f"/api/v1/images/{seeded.image_id}/reviews"
    body = {"action": "confirm", "detection_id": seeded.detections[0]}
    assert client.post(url, json=body).status_code == 403
    assert client.post(url, json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert client.post(url, json=body, headers={"X-CSRF-Token": token}).status_code == 201
    # Reading needs no CSRF token.
    assert client.get(f"/api/v1/images/{seeded.image_id}").status_code == 200
    client.cookies.clear()


def test_the_login_form_refuses_a_post_without_its_token(env: ApiEnv) -> None:
    response = env.client.post(
        "/review/login",
        data={"username": "inspector-user", "password": PASSWORD, "csrf": "guess"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert "mamori_session" not in env.client.cookies


def test_security_headers_on_every_kind_of_response(env: ApiEnv) -> None:
    for response in (
        env.client.get("/api/v1/health"),
        env.client.get("/api/v1/sites"),
        env.client.get("/review/login"),
        env.client.get("/no/such/route"),
    ):
        headers = response.headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
