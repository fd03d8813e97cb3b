"""The engine on real PostgreSQL and real Mosquitto: readings in, alerts out, restart."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from alerts.engine import AlertEngine
from alerts.ruleset import parse_rules
from core.messages import Reading
from core.registry import AssetKind, AssetSpec, DeviceSpec
from core.settings import AlertsSettings, MqttSettings
from core.topics import Topics
from edge_agent.publisher import DevicePublisher
from store import alerts as q
from store.registry import upsert_asset, upsert_device
from tests.integration.alerts.helpers import (
    RULES,
    AlertWatcher,
    Clock,
    Fleet,
    eventually,
    register_fleet,
)
from tests.integration.alerts.test_webhook import SECRET, Receiver
from tests.proxy import CuttableProxy


@pytest.fixture
def fleet(database_url: str) -> Fleet:
    return register_fleet(database_url)


@pytest.fixture
def watcher(mqtt_settings: MqttSettings) -> Iterator[AlertWatcher]:
    watch = AlertWatcher(mqtt_settings)
    watch.start()
    yield watch
    watch.stop()


@pytest.fixture
def device(mqtt_settings: MqttSettings, fleet: Fleet) -> Iterator[DevicePublisher]:
    publisher = DevicePublisher(mqtt_settings, fleet.site, fleet.device)
    publisher.start()
    yield publisher
    publisher.stop()


def alerts_of(database_url: str, asset: str) -> list[q.AlertRow]:
    with psycopg.connect(database_url) as conn:
        return [r for r in q.list_alerts(conn, include_resolved=True) if r.asset_id == asset]


def events_of(database_url: str, alert_id: int) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [e.transition for e in q.alert_events(conn, alert_id)]


def photo_with_cracks(database_url: str, asset: str, widths: list[float]) -> list[int]:
    """A photo of the asset with one crack detection per width (mm); their ids."""
    image = f"img-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """INSERT INTO images (id, asset_id, blob_key, sha256, size_bytes, content_type)
               VALUES (%s, %s, %s, %s, 1, 'image/jpeg')""",
            (image, asset, f"k-{image}", "0" * 64),
        )
        ids = []
        for width in widths:
            row = conn.execute(
                """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2, y2,
                                          max_width_mm, model_version, model_name)
                   VALUES (%s, 'crack', 0.9, 0, 0, 10, 10, %s, 'test', 'test') RETURNING id""",
                (image, width),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
        conn.commit()
    return ids


def review(database_url: str, detection: int, action: str, damage_type: str | None = None) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            """INSERT INTO reviews (image_id, detection_id, reviewer, action, damage_type)
               SELECT image_id, id, 'sato', %s, %s FROM detections WHERE id = %s""",
            (action, damage_type, detection),
        )
        conn.commit()


def make_engine(mqtt: MqttSettings, database_url: str, clock: Clock, client_id: str) -> AlertEngine:
    settings = AlertsSettings(mqtt=mqtt, tick_s=3600)
    return AlertEngine(settings, database_url, parse_rules(RULES), client_id=client_id, clock=clock)


def test_readings_open_raise_survive_restart_and_resolve(
    database_url: str,
    mqtt_settings: MqttSettings,
    fleet: Fleet,
    watcher: AlertWatcher,
    device: DevicePublisher,
) -> None:
    clock = Clock()
    client_id = f"alerts-{uuid.uuid4().hex[:8]}"
    topic = Topics(mqtt_settings.topic_prefix).alerts(fleet.site, fleet.station)

    def send(minutes: float, level: float) -> None:
        at = clock.now + timedelta(minutes=minutes)
        device.publish_batch([Reading(metric="water_level_m", ts=at, value=level)])

    engine = make_engine(mqtt_settings, database_url, clock, client_id)
    engine.start()
    try:
        send(0, 1.0)
        send(1, 2.5)  # above 氾濫注意水位 2.2: 警戒レベル2
        assert eventually(lambda: len(alerts_of(database_url, fleet.station)) == 1)
        assert eventually(lambda: topic in watcher.latest and watcher.latest[topic].level == 2)
        send(2, 3.0)  # above 避難判断水位 2.9: 警戒レベル3, the same alert
        assert eventually(
            lambda: watcher.latest.get(topic) is not None and watcher.latest[topic].level == 3
        )
        (alert,) = alerts_of(database_url, fleet.station)
        assert (alert.level, alert.state) == (3, "open")
        change = watcher.latest[topic].change
        assert change is not None
        assert (change.transition.value, change.alert_id) == ("raised", alert.id)
    finally:
        engine.stop()

    # Readings sent while the engine is down wait in its persistent session.
    send(3, 3.6)  # above 氾濫危険水位 3.4
    restarted = make_engine(mqtt_settings, database_url, clock, client_id)
    restarted.start()
    try:
        assert restarted.stats.restored_bindings >= 1
        assert eventually(lambda: alerts_of(database_url, fleet.station)[0].level == 4)
        # Redelivered or repeated readings change nothing.
        send(3, 3.6)
        send(2, 3.0)
        assert restarted.tick_now()
        assert events_of(database_url, alert.id) == ["opened", "raised", "raised"]
        # The river falls; below every clear level the alert steps down then resolves
        # once the clear condition held for clear_for_s (300 s) of engine time.
        send(10, 1.0)
        assert eventually(lambda: alerts_of(database_url, fleet.station)[0].state == "open")
        assert restarted.tick_now()
        clock.advance(minutes=20)
        assert restarted.tick_now()
        (final,) = alerts_of(database_url, fleet.station)
        assert final.state == "resolved"
        assert eventually(lambda: watcher.latest[topic].level == 0)
        assert events_of(database_url, alert.id) == ["opened", "raised", "raised", "resolved"]
    finally:
        restarted.stop()
    with psycopg.connect(database_url) as conn:
        caps = q.cap_messages(conn, alert.id)
    assert [c.msg_type for c in caps] == ["Alert", "Update", "Update", "Cancel"]


def test_a_database_outage_neither_loses_nor_repeats_a_transition(
    database_url: str,
    mqtt_settings: MqttSettings,
    fleet: Fleet,
    device: DevicePublisher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's database goes out of reach mid-event, and drops once more just as the
    engine reloads its state: readings wait unacknowledged, the engine retries, and once
    the database is back each transition is written once, stamped with its reading's
    time."""
    clock = Clock()
    port = int(conninfo_to_dict(database_url).get("port") or 5432)
    link = CuttableProxy(port)
    through_link = make_conninfo(database_url, host="127.0.0.1", port=str(link.port))
    engine = make_engine(mqtt_settings, through_link, clock, f"alerts-{uuid.uuid4().hex[:8]}")
    engine.start()
    reload = engine._rebuild
    drops = [psycopg.OperationalError("the database dropped again during the reload")]

    def flaky_reload() -> int:
        # Only once the engine has a live connection again, and only once.
        if drops and not engine._conn.closed:
            raise drops.pop()
        return reload()

    monkeypatch.setattr(engine, "_rebuild", flaky_reload)
    try:
        device.publish_batch([Reading(metric="water_level_m", ts=clock.now, value=1.0)])
        assert eventually(lambda: engine.stats.readings == 1)
        link.cut()
        rise = [(1, 2.5), (2, 3.0)]  # 警戒レベル2, then 3
        for minutes, level in rise:
            at = clock.now + timedelta(minutes=minutes)
            device.publish_batch([Reading(metric="water_level_m", ts=at, value=level)])
        assert eventually(lambda: engine.stats.db_retries >= 2)
        assert alerts_of(database_url, fleet.station) == []
        link.restore()
        assert eventually(
            lambda: [a.level for a in alerts_of(database_url, fleet.station)] == [3], 20
        )
        assert engine.tick_now()
        assert not drops
        (alert,) = alerts_of(database_url, fleet.station)
        with psycopg.connect(database_url) as conn:
            events = q.alert_events(conn, alert.id)
        assert [(e.transition, e.to_level, e.at) for e in events] == [
            ("opened", 2, clock.now + timedelta(minutes=1)),
            ("raised", 3, clock.now + timedelta(minutes=2)),
        ]
    finally:
        engine.stop()
        link.close()


def test_an_asset_registered_while_running_gets_its_rules(
    database_url: str, mqtt_settings: MqttSettings, fleet: Fleet
) -> None:
    """A river station and its gauge added to the registry after the engine started:
    its first readings are judged, no restart needed; a threshold changed on it later
    applies too, and what the engine remembered about the station survives the rebind."""
    clock = Clock()
    settings = AlertsSettings(mqtt=mqtt_settings, tick_s=3600)
    engine = AlertEngine(
        settings,
        database_url,
        parse_rules(RULES),
        client_id=f"alerts-{uuid.uuid4().hex[:8]}",
        clock=clock,
        registry_refresh_s=0.0,
    )
    engine.start()
    station, gauge = f"new-{uuid.uuid4().hex[:6]}", f"wl-{uuid.uuid4().hex[:6]}"
    levels = {"standby_m": 1.6, "caution_m": 2.2, "evacuation_m": 2.9, "danger_m": 3.4}
    publisher = DevicePublisher(mqtt_settings, fleet.site, gauge)
    publisher.start()

    def register(caution_m: float) -> None:
        with psycopg.connect(database_url) as conn:
            upsert_asset(
                conn,
                AssetSpec(
                    id=station,
                    site_id=fleet.site,
                    kind=AssetKind.RIVER_STATION,
                    name="New station",
                    thresholds={"river_levels": {**levels, "caution_m": caution_m}},
                ),
            )
            upsert_device(
                conn,
                DeviceSpec(id=gauge, site_id=fleet.site, asset_id=station, kind="river_level"),
            )
            conn.commit()

    start = clock.now

    def send(minutes: float, level: float) -> None:
        at = start + timedelta(minutes=minutes)
        publisher.publish_batch([Reading(metric="water_level_m", ts=at, value=level)])

    try:
        register(caution_m=2.2)
        send(0, 2.5)  # above 氾濫注意水位 2.2: 警戒レベル2
        assert eventually(lambda: [a.level for a in alerts_of(database_url, station)] == [2])
        send(1, 1.0)
        assert engine.tick_now()
        clock.advance(minutes=20)  # the fall held longer than clear_for_s (300 s)
        assert engine.tick_now()
        assert [a.state for a in alerts_of(database_url, station)] == ["resolved"]
        # The caution level is lowered to 1.9 m: 2.0 m now opens an alert, which it
        # would not under 2.2 m. A repeat of the first reading is still recognised as
        # one the engine has seen, so the saved state survived the rebind.
        register(caution_m=1.9)
        assert engine.tick_now()
        send(0, 2.5)
        send(21, 2.0)
        assert eventually(lambda: len(alerts_of(database_url, station)) == 2)
        assert engine.tick_now()
        first, second = sorted(alerts_of(database_url, station), key=lambda a: a.id)
        assert events_of(database_url, first.id) == ["opened", "resolved"]
        assert events_of(database_url, second.id) == ["opened"]
        assert (second.level, second.value) == (2, 2.0)
    finally:
        publisher.stop()
        engine.stop()


def test_a_standby_takes_over_and_a_fenced_out_engine_writes_nothing(
    database_url: str, mqtt_settings: MqttSettings, fleet: Fleet, device: DevicePublisher
) -> None:
    """Two instances of one engine (one MQTT session, one lease): the standby waits
    unsubscribed, takes over when the active one stops, and an instance whose lease was
    taken from it steps down without writing."""
    clock = Clock()
    client_id = f"alerts-{uuid.uuid4().hex[:8]}"

    def instance(name: str) -> AlertEngine:
        settings = AlertsSettings(mqtt=mqtt_settings, tick_s=3600, instance=name, lease_ttl_s=5)
        return AlertEngine(
            settings, database_url, parse_rules(RULES), client_id=client_id, clock=clock
        )

    def send(minutes: float, level: float) -> None:
        at = clock.now + timedelta(minutes=minutes)
        device.publish_batch([Reading(metric="water_level_m", ts=at, value=level)])

    def holder() -> str | None:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT holder FROM alert_engine_lease WHERE name = %s", (client_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    active, standby = instance("a"), instance("b")
    assert active.start()
    took_over: list[bool] = []
    waiting = threading.Thread(target=lambda: took_over.append(standby.start()))
    waiting.start()
    try:
        send(1, 2.5)
        assert eventually(lambda: [a.level for a in alerts_of(database_url, fleet.station)] == [2])
        assert (holder(), took_over) == ("a", [])
        active.stop()  # a clean stop gives the lease up at once
        waiting.join(15)
        assert took_over == [True]
        assert holder() == "b"
        send(2, 3.0)  # the standby resumes the same session and the same rule state
        assert eventually(lambda: alerts_of(database_url, fleet.station)[0].level == 3)
        (alert,) = alerts_of(database_url, fleet.station)
        # b froze past its lease and another instance took over: b's next commit finds
        # the lease gone, writes nothing and steps down.
        with psycopg.connect(database_url) as conn:
            conn.execute(
                "UPDATE alert_engine_lease SET holder = 'c', expires_at = now() + interval"
                " '1 hour' WHERE name = %s",
                (client_id,),
            )
            conn.commit()
        send(3, 3.6)
        assert eventually(lambda: standby.lost_lease)
        assert events_of(database_url, alert.id) == ["opened", "raised"]
        assert alerts_of(database_url, fleet.station)[0].level == 3
    finally:
        active.stop()
        standby.request_stop()
        waiting.join(15)
        standby.stop()


def test_operator_ack_is_published_and_findings_open_alerts(
    database_url: str, mqtt_settings: MqttSettings, fleet: Fleet, watcher: AlertWatcher
) -> None:
    clock = Clock()
    engine = make_engine(mqtt_settings, database_url, clock, f"alerts-{uuid.uuid4().hex[:8]}")
    engine.start()
    try:
        photo_with_cracks(database_url, fleet.bridge, [0.2, 0.45])
        assert engine.tick_now()
        (alert,) = alerts_of(database_url, fleet.bridge)
        assert (alert.rule_id, alert.level, alert.state) == ("crack", 3, "open")
        topic = Topics(mqtt_settings.topic_prefix).alerts(fleet.site, fleet.bridge)
        assert eventually(lambda: topic in watcher.latest)
        with psycopg.connect(database_url) as conn, conn.transaction():
            engine.book.acknowledge(conn, alert.id, "tanaka", clock.now)
        assert engine.tick_now()
        assert eventually(lambda: watcher.latest[topic].open[0].state.value == "acknowledged")
        # The same detections are not read twice.
        assert engine.tick_now()
        assert events_of(database_url, alert.id) == ["opened", "acknowledged"]
    finally:
        engine.stop()


def test_a_finding_alert_is_withdrawn_when_inspectors_reject_what_raised_it(
    database_url: str, mqtt_settings: MqttSettings, fleet: Fleet
) -> None:
    clock = Clock()
    engine = make_engine(mqtt_settings, database_url, clock, f"alerts-{uuid.uuid4().hex[:8]}")
    engine.start()
    try:
        # Two cracks wider than 0.3 mm raise the alert; the 0.2 mm one never counted.
        narrow, wide, wider = photo_with_cracks(database_url, fleet.bridge, [0.2, 0.45, 0.6])
        assert engine.tick_now()
        (alert,) = alerts_of(database_url, fleet.bridge)
        assert (alert.level, alert.state) == (3, "open")
        review(database_url, wide, "reject")
        review(database_url, narrow, "confirm")
        assert engine.tick_now()
        assert alerts_of(database_url, fleet.bridge)[0].state == "open"  # one still stands
        review(database_url, wider, "reclassify", "efflorescence")
        assert engine.tick_now()
        (done,) = alerts_of(database_url, fleet.bridge)
        assert (done.state, done.resolved_by) == ("resolved", "sato")
        with psycopg.connect(database_url) as conn:
            events = q.alert_events(conn, alert.id)
            caps = q.cap_messages(conn, alert.id)
        assert [e.transition for e in events] == ["opened", "resolved"]
        assert events[-1].note is not None
        assert f"{wide}, {wider}" in events[-1].note
        assert [c.msg_type for c in caps] == ["Alert", "Cancel"]
        # A new crack on the bridge raises a new alert.
        photo_with_cracks(database_url, fleet.bridge, [0.5])
        assert engine.tick_now()
        assert sorted(a.state for a in alerts_of(database_url, fleet.bridge)) == [
            "open",
            "resolved",
        ]
    finally:
        engine.stop()


def test_a_crack_an_inspector_measured_wider_raises_its_finding_alert(
    database_url: str, mqtt_settings: MqttSettings, fleet: Fleet
) -> None:
    """The model measured a crack 0.2 mm wide (under the rule's 0.3 mm); an inspector
    moves its box onto the crack and a worker measures 0.6 mm in it: the alert opens."""
    clock = Clock()
    engine = make_engine(mqtt_settings, database_url, clock, f"alerts-{uuid.uuid4().hex[:8]}")
    engine.start()
    try:
        (narrow,) = photo_with_cracks(database_url, fleet.bridge, [0.2])
        assert engine.tick_now()
        assert alerts_of(database_url, fleet.bridge) == []
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                """INSERT INTO reviews (image_id, detection_id, reviewer, action, x1, y1, x2, y2)
                   SELECT image_id, id, 'sato', 'adjust', 0, 0, 20, 200 FROM detections
                   WHERE id = %s RETURNING id""",
                (narrow,),
            ).fetchone()
            assert row is not None
            conn.execute(
                """INSERT INTO review_measurements (review_id, max_width_px, max_width_mm,
                                                    measured_by)
                   VALUES (%s, 2.4, 0.6, 'w1')""",
                (row[0],),
            )
            conn.commit()
        assert engine.tick_now()
        (alert,) = alerts_of(database_url, fleet.bridge)
        assert (alert.rule_id, alert.level, alert.value) == ("crack", 3, 0.6)
        assert engine.tick_now()  # read once
        assert events_of(database_url, alert.id) == ["opened"]
    finally:
        engine.stop()


def test_a_resolve_written_by_the_api_gets_its_cap_cancel_and_publication(
    database_url: str,
    mqtt_settings: MqttSettings,
    fleet: Fleet,
    watcher: AlertWatcher,
    device: DevicePublisher,
) -> None:
    clock = Clock()
    engine = make_engine(mqtt_settings, database_url, clock, f"alerts-{uuid.uuid4().hex[:8]}")
    topic = Topics(mqtt_settings.topic_prefix).alerts(fleet.site, fleet.station)
    engine.start()
    try:
        device.publish_batch([Reading(metric="water_level_m", ts=clock.now, value=3.0)])
        assert eventually(lambda: len(alerts_of(database_url, fleet.station)) == 1)
        (alert,) = alerts_of(database_url, fleet.station)
        # What the API does: the tables only (it cannot import the alerts service).
        with psycopg.connect(database_url) as conn:
            conn.execute(
                """UPDATE alerts SET state = 'resolved', resolved_at = %s, resolved_by = 'sato',
                          updated_at = %s WHERE id = %s""",
                (clock.now, clock.now, alert.id),
            )
            conn.execute(
                """INSERT INTO alert_events (alert_id, at, actor, transition, from_state,
                                            to_state, from_level, to_level, note)
                   VALUES (%s, %s, 'sato', 'resolved', 'open', 'resolved', 3, 3, 'checked')""",
                (alert.id, clock.now),
            )
        assert engine.tick_now()
        assert eventually(
            lambda: watcher.latest.get(topic) is not None and watcher.latest[topic].level == 0
        )
        assert engine.tick_now()  # following up twice issues nothing twice
        with psycopg.connect(database_url) as conn:
            caps = q.cap_messages(conn, alert.id)
        assert [c.msg_type for c in caps] == ["Alert", "Cancel"]
    finally:
        engine.stop()


def test_the_engine_delivers_webhooks_from_its_own_thread(
    database_url: str,
    mqtt_settings: MqttSettings,
    fleet: Fleet,
    device: DevicePublisher,
) -> None:
    receiver = Receiver()
    receiver.up = True
    target = f"centre-{fleet.station}"
    rules = parse_rules(
        RULES + f'\nwebhooks:\n  - {{name: {target}, url: "{receiver.url}", secret_env: HOOK}}\n'
    )
    clock = Clock()
    engine = AlertEngine(
        AlertsSettings(mqtt=mqtt_settings, tick_s=3600),
        database_url,
        rules,
        client_id=f"alerts-{uuid.uuid4().hex[:8]}",
        clock=clock,
        webhook_secrets={target: SECRET},
    )
    engine.start()
    try:
        device.publish_batch([Reading(metric="water_level_m", ts=clock.now, value=2.5)])
        device.publish_batch(
            [Reading(metric="water_level_m", ts=clock.now + timedelta(minutes=1), value=3.0)]
        )
        assert eventually(lambda: len(receiver.received) == 2)
        levels = sorted(m.level for m in receiver.received.values())
        assert levels == [2, 3]
        assert receiver.bad_signatures == 0
        assert receiver.duplicates == 0
    finally:
        engine.stop()
        receiver.close()
