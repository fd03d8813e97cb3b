"""What the routes do, against real PostgreSQL: registry, readings, photos, reviews,
alerts, health, metrics and the OpenAPI document."""

from __future__ import annotations

from datetime import timedelta

import cv2
import numpy as np

from api.security import Role
from store.readings import insert_readings
from tests.integration.api.conftest import ApiEnv, png_bytes, seed


def test_registry_is_managed_by_admins(env: ApiEnv) -> None:
    admin, viewer = env.headers[Role.ADMIN], env.headers[Role.VIEWER]
    client = env.client
    assert client.put("/api/v1/sites/s1", json={"name": "S"}, headers=admin).status_code == 200
    body = {"site_id": "s1", "kind": "river_station", "name": "Gauge", "lat": 34.1}
    assert client.put("/api/v1/assets/a1", json=body, headers=admin).status_code == 200
    orphan = {**body, "site_id": "nowhere"}
    assert client.put("/api/v1/assets/a2", json=orphan, headers=admin).status_code == 409
    assert client.get("/api/v1/assets?site_id=s1", headers=viewer).json()[0]["name"] == "Gauge"
    assert client.get("/api/v1/assets?kind=bridge", headers=viewer).json() == []
    assert client.delete("/api/v1/sites/s1", headers=admin).status_code == 409
    assert client.delete("/api/v1/assets/a1", headers=admin).status_code == 204
    assert client.delete("/api/v1/sites/s1", headers=admin).status_code == 204
    assert client.get("/api/v1/sites/s1", headers=viewer).status_code == 404


def test_readings_series_and_latest(env: ApiEnv) -> None:
    seed(env)
    now = env.clock().replace(second=0)
    base = now - timedelta(minutes=30)
    rows = [
        (base + timedelta(minutes=m), "d1", "water_level_m", 1.0 + m / 10, m) for m in range(20)
    ]
    with env.conn() as conn:
        insert_readings(conn, rows)
        conn.commit()
    viewer = env.headers[Role.VIEWER]
    response = env.client.get(
        "/api/v1/readings/series",
        params={
            "device_id": "d1",
            "metric": "water_level_m",
            "start": (base - timedelta(hours=1)).isoformat(),
            "end": now.isoformat(),
            "bucket": "1h",
        },
        headers=viewer,
    )
    assert response.status_code == 200, response.text
    points = response.json()["points"]
    assert sum(p["count"] for p in points) == 20
    assert min(p["min"] for p in points) == 1.0
    assert max(p["max"] for p in points) == 2.9
    assert points[-1]["last"] == 2.9
    latest = env.client.get("/api/v1/readings/latest?asset_id=a1", headers=viewer).json()
    assert latest == [
        {
            "device_id": "d1",
            "metric": "water_level_m",
            "ts": latest[0]["ts"],
            "value": 2.9,
        }
    ]
    bad = env.client.get(
        "/api/v1/readings/series",
        params={"device_id": "d1", "start": now.isoformat(), "end": base.isoformat()},
        headers=viewer,
    )
    assert bad.status_code == 422


def test_photos_list_original_and_overlay(env: ApiEnv) -> None:
    seeded = seed(env)
    viewer = env.headers[Role.VIEWER]
    listed = env.client.get("/api/v1/images?asset_id=a1&status=flagged", headers=viewer).json()
    assert {i["id"] for i in listed} == {seeded.image_id, seeded.other_image_id}
    assert env.client.get("/api/v1/images?status=failed", headers=viewer).json() == []
    original = env.client.get(f"/api/v1/images/{seeded.image_id}/original", headers=viewer)
    assert original.headers["content-type"] == "image/png"
    assert original.content == png_bytes(seed=1)
    overlay = env.client.get(f"/api/v1/images/{seeded.image_id}/overlay", headers=viewer)
    assert overlay.headers["content-type"] == "image/png"
    drawn = cv2.imdecode(np.frombuffer(overlay.content, np.uint8), cv2.IMREAD_COLOR)
    plain = cv2.imdecode(np.frombuffer(original.content, np.uint8), cv2.IMREAD_COLOR)
    assert drawn is not None
    assert plain is not None
    assert drawn.shape == plain.shape
    # The box edges of the first detection (10,10)-(200,60) were painted.
    assert not np.array_equal(drawn[60, 100], plain[60, 100])
    detections = env.client.get(
        f"/api/v1/images/{seeded.image_id}/detections", headers=viewer
    ).json()
    assert [d["damage_type"] for d in detections] == ["crack", "corrosion"]
    found = env.client.get("/api/v1/detections?damage_type=spalling", headers=viewer).json()
    assert [d["id"] for d in found] == [seeded.other_detection]
    confident = env.client.get("/api/v1/detections?min_confidence=0.85", headers=viewer).json()
    assert [d["damage_type"] for d in confident] == ["crack"]


def test_review_queue_puts_the_most_severe_first(env: ApiEnv) -> None:
    seeded = seed(env)
    queue = env.client.get(
        "/api/v1/images/review-queue", headers=env.headers[Role.INSPECTOR]
    ).json()
    # Exposed rebar (spalling) outranks a 0.35 mm crack.
    assert [item["image"]["id"] for item in queue] == [seeded.other_image_id, seeded.image_id]
    assert [item["pending"] for item in queue] == [1, 2]


def test_every_review_action_changes_the_findings(env: ApiEnv) -> None:
    seeded = seed(env)
    inspector = env.headers[Role.INSPECTOR]
    crack, corrosion = seeded.detections
    url = f"/api/v1/images/{seeded.image_id}/reviews"
    for body in (
        {"action": "confirm", "detection_id": crack},
        {"action": "reclassify", "detection_id": corrosion, "damage_type": "efflorescence"},
        {
            "action": "adjust",
            "detection_id": corrosion,
            "box": {"x1": 5, "y1": 6, "x2": 70, "y2": 80},
        },
        {
            "action": "add",
            "damage_type": "crack",
            "box": {"x1": 200, "y1": 100, "x2": 300, "y2": 200},
        },
        {"action": "grade", "member": "主桁 Mg0101", "grade": "III", "note": "幅 0.35 mm"},
        {"action": "grade", "grade": "II"},
    ):
        response = env.client.post(url, json=body, headers=inspector)
        assert response.status_code == 201, (body, response.text)
        assert response.json()["reviewer"] == "inspector-user"
    detail = env.client.get(
        f"/api/v1/images/{seeded.image_id}", headers=env.headers[Role.VIEWER]
    ).json()
    by_id = {f["detection_id"]: f for f in detail["findings"]}
    assert by_id[crack]["status"] == "confirmed"
    assert by_id[corrosion]["damage_type"] == "efflorescence"
    assert by_id[corrosion]["model_damage_type"] == "corrosion"
    assert by_id[corrosion]["adjusted"] is True
    assert (by_id[corrosion]["x1"], by_id[corrosion]["y2"]) == (5, 80)
    added = [f for f in detail["findings"] if f["added_by_inspector"]]
    assert len(added) == 1
    assert added[0]["model_name"] == "inspector"
    assert {(g["member"], g["grade"]) for g in detail["grades"]} == {
        (None, "II"),
        ("主桁 Mg0101", "III"),
    }
    reject = env.client.post(
        url, json={"action": "reject", "detection_id": crack}, headers=inspector
    )
    assert reject.status_code == 201
    detail = env.client.get(f"/api/v1/images/{seeded.image_id}", headers=inspector).json()
    assert {f["detection_id"]: f["status"] for f in detail["findings"]}[crack] == "rejected"
    log = env.client.get(
        f"/api/v1/reviews?image_id={seeded.image_id}&action=grade", headers=inspector
    ).json()
    assert len(log) == 2


def test_reviews_that_do_not_fit_the_photo_are_refused(env: ApiEnv) -> None:
    seeded = seed(env)
    inspector = env.headers[Role.INSPECTOR]
    url = f"/api/v1/images/{seeded.image_id}/reviews"
    cases = [
        ({"action": "confirm", "detection_id": seeded.other_detection}, 422),
        (
            {"action": "reclassify", "detection_id": seeded.detections[0], "damage_type": "rust"},
            422,
        ),
        (
            {
                "action": "add",
                "damage_type": "crack",
                "box": {"x1": 0, "y1": 0, "x2": 9999, "y2": 10},
            },
            422,
        ),
        (
            {
                "action": "add",
                "damage_type": "crack",
                "box": {"x1": 50, "y1": 50, "x2": 10, "y2": 60},
            },
            422,
        ),
        ({"action": "grade", "grade": "V"}, 422),
        ({"action": "grade"}, 422),
        ({"action": "confirm"}, 422),
        ({"action": "confirm", "detection_id": 999_999}, 404),
    ]
    for body, expected in cases:
        response = env.client.post(url, json=body, headers=inspector)
        assert response.status_code == expected, (body, response.text)
    missing = env.client.post(
        "/api/v1/images/no-such-photo/reviews",
        json={"action": "grade", "grade": "I"},
        headers=inspector,
    )
    assert missing.status_code == 404


def test_alert_transitions_are_audited_with_the_actor(env: ApiEnv) -> None:
    seeded = seed(env)
    operator = env.headers[Role.OPERATOR]
    base = f"/api/v1/alerts/{seeded.alert_id}"
    listed = env.client.get("/api/v1/alerts?state=open&min_level=3", headers=operator).json()
    assert [a["id"] for a in listed] == [seeded.alert_id]
    ack = env.client.post(f"{base}/acknowledge", json={"note": "現地確認"}, headers=operator)
    assert ack.status_code == 200
    assert ack.json()["alert"]["state"] == "acknowledged"
    assert ack.json()["alert"]["acknowledged_by"] == "operator-user"
    assert env.client.post(f"{base}/acknowledge", json={}, headers=operator).status_code == 409
    note = env.client.post(f"{base}/comment", json={"note": "水位は下降傾向"}, headers=operator)
    assert note.json()["comments"][0]["actor"] == "operator-user"
    env.clock.advance(timedelta(minutes=5))
    resolved = env.client.post(f"{base}/resolve", json={}, headers=env.headers[Role.ADMIN])
    assert resolved.status_code == 200
    detail = resolved.json()
    assert detail["alert"]["resolved_by"] == "admin-user"
    assert [
        (e["transition"], e["actor"], e["from_state"], e["to_state"]) for e in detail["events"]
    ] == [
        ("acknowledged", "operator-user", "open", "acknowledged"),
        ("resolved", "admin-user", "acknowledged", "resolved"),
    ]
    assert env.client.post(f"{base}/resolve", json={}, headers=operator).status_code == 409
    assert (
        env.client.post("/api/v1/alerts/424242/resolve", json={}, headers=operator).status_code
        == 404
    )


def test_health_needs_no_login_and_metrics_count_requests(env: ApiEnv) -> None:
    health = env.client.get("/api/v1/health")
    assert health.status_code == 200
    assert health.json()["database"] == "ok"
    env.client.get("/api/v1/sites", headers=env.headers[Role.VIEWER])
    metrics = env.client.get("/metrics", headers=env.headers[Role.VIEWER])
    assert metrics.status_code == 200
    assert (
        'mamori_api_requests_total{method="GET",route="/api/v1/sites",status="200"}' in metrics.text
    )


def test_openapi_document_is_complete(env: ApiEnv) -> None:
    assert env.client.get("/api/v1/openapi.json").status_code == 401
    doc = env.client.get("/api/v1/openapi.json", headers=env.headers[Role.VIEWER]).json()
    public = {("get", "/api/v1/health"), ("post", "/api/v1/auth/token")}
    operations = [
        (method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()
    ]
    assert len(operations) >= 40
    for method, path, op in operations:
        assert op.get("summary"), (method, path)
        assert op.get("tags"), (method, path)
        if (method, path) not in public:
            assert "401" in op["responses"], (method, path)
    ids = [op["operationId"] for _, _, op in operations]
    assert len(ids) == len(set(ids))
    schemas = doc["components"]["schemas"]
    assert schemas["ReviewIn"]["examples"]
    assert schemas["TokenOut"]["examples"]
    assert "image/jpeg" in doc["paths"]["/api/v1/images"]["post"]["requestBody"]["content"]


def test_cap_feed_lists_what_the_alert_engine_issued(env: ApiEnv) -> None:
    seeded = seed(env)
    xml = '<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>'
    with env.conn() as conn:
        event = conn.execute(
            """INSERT INTO alert_events (alert_id, actor, transition, to_state, to_level)
               VALUES (%s, 'rule', 'opened', 'open', 3) RETURNING id""",
            (seeded.alert_id,),
        ).fetchone()
        assert event is not None
        conn.execute(
            """INSERT INTO alert_cap_messages (identifier, alert_id, event_id, msg_type, sent, xml)
               VALUES ('urn:mamori:1', %s, %s, 'Alert', %s, %s)""",
            (seeded.alert_id, event[0], env.clock(), xml),
        )
        conn.commit()
    viewer = env.headers[Role.VIEWER]
    feed = env.client.get("/api/v1/cap/feed.atom", headers=viewer)
    assert feed.headers["content-type"].startswith("application/atom+xml")
    assert "/api/v1/cap/messages/urn%3Amamori%3A1" in feed.text
    message = env.client.get("/api/v1/cap/messages/urn:mamori:1", headers=viewer)
    assert message.headers["content-type"].startswith("application/cap+xml")
    assert message.text == xml
    assert env.client.get("/api/v1/cap/messages/urn:none", headers=viewer).status_code == 404


def test_photo_size_comes_from_the_file_when_ingest_did_not_know_it(env: ApiEnv) -> None:
    seeded = seed(env)
    with env.conn() as conn:
        conn.execute(
            "UPDATE images SET width = NULL, height = NULL WHERE id = %s", (seeded.image_id,)
        )
        conn.commit()
    inspector = env.headers[Role.INSPECTOR]
    detail = env.client.get(f"/api/v1/images/{seeded.image_id}", headers=inspector).json()
    assert (detail["image"]["width"], detail["image"]["height"]) == (320, 240)
    outside = {
        "action": "add",
        "damage_type": "crack",
        "box": {"x1": 0, "y1": 0, "x2": 321, "y2": 9},
    }
    response = env.client.post(
        f"/api/v1/images/{seeded.image_id}/reviews", json=outside, headers=inspector
    )
    assert response.status_code == 422
