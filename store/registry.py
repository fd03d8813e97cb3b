"""Sites, assets and devices: upserts used by the demo, the API and the tests."""

from __future__ import annotations

import psycopg
from psycopg.types.json import Jsonb

from core.registry import AssetSpec, DeviceSpec, SiteSpec
from store.db import translate_errors

Conn = psycopg.Connection[tuple[object, ...]]


def upsert_site(conn: Conn, site: SiteSpec) -> None:
    with translate_errors("saving a site"):
        conn.execute(
            """INSERT INTO sites (id, name, name_ja, prefecture) VALUES (%s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET name = excluded.name, name_ja = excluded.name_ja,
                   prefecture = excluded.prefecture""",
            (site.id, site.name, site.name_ja, site.prefecture),
        )


def upsert_asset(conn: Conn, asset: AssetSpec) -> None:
    with translate_errors("saving an asset"):
        conn.execute(
            """INSERT INTO assets (id, site_id, kind, name, name_ja, lat, lon, thresholds)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET site_id = excluded.site_id, kind = excluded.kind,
                   name = excluded.name, name_ja = excluded.name_ja, lat = excluded.lat,
                   lon = excluded.lon, thresholds = excluded.thresholds""",
            (
                asset.id,
                asset.site_id,
                asset.kind.value,
                asset.name,
                asset.name_ja,
                asset.lat,
                asset.lon,
                Jsonb(asset.thresholds),
            ),
        )


def upsert_device(conn: Conn, device: DeviceSpec) -> None:
    with translate_errors("saving a device"):
        conn.execute(
            """INSERT INTO devices (id, site_id, asset_id, kind, expected_interval_s)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET site_id = excluded.site_id,
                   asset_id = excluded.asset_id, kind = excluded.kind,
                   expected_interval_s = excluded.expected_interval_s""",
            (device.id, device.site_id, device.asset_id, device.kind, device.expected_interval_s),
        )


def device_sites(conn: Conn) -> dict[str, str]:
    """Every registered device id with its site id (ingest checks topics against it)."""
    with translate_errors("listing devices"):
        rows = conn.execute("SELECT id, site_id FROM devices").fetchall()
    return {str(device): str(site) for device, site in rows}
