"""Resolving the database a command should use: the configured URL, or an embedded one."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from core.registry import AssetSpec, DeviceSpec, SiteSpec
from core.settings import DatabaseSettings
from store.db import connect
from store.embedded import EmbeddedPostgres, create_database
from store.migrate import migrate
from store.registry import upsert_asset, upsert_device, upsert_site

EMBEDDED_DATABASE = "mamori"


@contextlib.contextmanager
def database_url(settings: DatabaseSettings) -> Iterator[str]:
    """Yield a URL: the configured one, or an embedded server's (stopped on exit)."""
    if settings.url is not None:
        yield settings.url.get_secret_value()
        return
    server = EmbeddedPostgres(Path(settings.embedded_dir))
    try:
        admin = server.start()
        yield create_database(admin, EMBEDDED_DATABASE)
    finally:
        server.stop()


def migrate_url(url: str) -> int:
    """Apply pending migrations; return how many ran."""
    with connect(url) as conn:
        return len(migrate(conn))


def register(
    url: str, site: SiteSpec, assets: tuple[AssetSpec, ...], devices: list[DeviceSpec]
) -> None:
    with connect(url) as conn:
        upsert_site(conn, site)
        for asset in assets:
            upsert_asset(conn, asset)
        for device in devices:
            upsert_device(conn, device)
        conn.commit()
