"""``mamori api ...``: serve the API and review page, manage users and keys, export.

``register(app)`` adds the commands to the ``api`` group that ``mamori.cli`` builds.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.errors import ConfigError
from core.logs import setup_logging
from core.settings import ApiSettings, load_settings

_console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; environment variables win over it."),
]
_ROLES = ("admin", "inspector", "operator", "viewer", "device")


def _settings(config: Path | None) -> ApiSettings:
    settings = load_settings(ApiSettings, config)
    setup_logging(settings.log.level, settings.log.format)
    return settings


def _password(prompt: bool, env_name: str) -> str:
    value = os.environ.get(env_name)
    if value:
        return value
    if not prompt:
        raise ConfigError(f"no password: set {env_name} or run in a terminal")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise ConfigError("the passwords differ")
    return first


def run(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Override settings.host.")] = None,
    port: Annotated[int | None, typer.Option(help="Override settings.port.")] = None,
    demo: Annotated[
        bool,
        typer.Option(help="Seed three synthetic flagged photos and a demo inspector login."),
    ] = False,
) -> None:
    """Serve the HTTP API and the review page (uvicorn)."""
    import secrets

    import uvicorn

    from api.app import create_app
    from mamori.stack import database_url, migrate_url
    from store.db import connect

    settings = _settings(config)
    with database_url(settings.database) as url:
        migrate_url(url)
        bind_host = host or settings.host
        bind_port = port or settings.port
        if demo:
            from api.demo_seed import seed_review_demo

            password = os.environ.get("MAMORI_API_DEMO_PASSWORD") or secrets.token_urlsafe(12)
            with connect(url) as conn:
                seed_review_demo(conn, settings.blob_dir, inspector="inspector", password=password)
            _console.print(
                "demo login: inspector / "
                + (
                    "(MAMORI_API_DEMO_PASSWORD)"
                    if "MAMORI_API_DEMO_PASSWORD" in os.environ
                    else password
                )
                + "  (an existing demo user keeps its first password)"
            )
        application = create_app(settings, url)
        _console.print(f"Mamori API on http://{bind_host}:{bind_port}/review")
        uvicorn.run(application, host=bind_host, port=bind_port, log_config=None)


def create_user(
    username: Annotated[str, typer.Argument(help="lower-case login name")],
    role: Annotated[str, typer.Option(help="admin, inspector, operator, viewer, device")],
    display_name: Annotated[str, typer.Option(help="shown on the review page")] = "",
    config: ConfigOption = None,
) -> None:
    """Create a user; the password comes from MAMORI_API_NEW_PASSWORD or a prompt."""
    from api.security import hash_password
    from mamori.stack import database_url, migrate_url
    from store import api_auth
    from store.db import connect

    if role not in _ROLES:
        raise ConfigError(f"role must be one of {', '.join(_ROLES)}")
    settings = _settings(config)
    password = _password(prompt=True, env_name="MAMORI_API_NEW_PASSWORD")
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    with database_url(settings.database) as url:
        migrate_url(url)
        with connect(url) as conn:
            api_auth.create_user(
                conn,
                username=username,
                display_name=display_name,
                role=role,
                password_hash=password_hash,
            )
            conn.commit()
    _console.print(f"user {username} ({role}) created")


def create_api_key(
    name: Annotated[str, typer.Argument(help="what the key is for")],
    role: Annotated[str, typer.Option(help="usually device or viewer")] = "device",
    config: ConfigOption = None,
) -> None:
    """Create an API key for a machine and print it (shown only this once)."""
    from api.security import new_api_key
    from mamori.stack import database_url, migrate_url
    from store import api_auth
    from store.db import connect

    if role not in _ROLES:
        raise ConfigError(f"role must be one of {', '.join(_ROLES)}")
    settings = _settings(config)
    fresh = new_api_key()
    with database_url(settings.database) as url:
        migrate_url(url)
        with connect(url) as conn:
            api_auth.create_api_key(
                conn,
                prefix=fresh.prefix,
                secret_sha256=fresh.secret_sha256,
                name=name,
                role=role,
                created_by="cli",
            )
            conn.commit()
    _console.print(fresh.key, highlight=False, soft_wrap=True)


def export_reviewed_command(
    out: Annotated[Path, typer.Option("--out", help="folder for images/, labels/, data.yaml")],
    config: ConfigOption = None,
) -> None:
    """Write reviewed photos with YOLO labels of the inspectors' decisions."""
    from rich.progress import Progress

    from api.exports import export_reviewed
    from mamori.stack import database_url
    from store.db import connect

    settings = _settings(config)
    with database_url(settings.database) as url, connect(url) as conn, Progress() as bar:
        task = bar.add_task("exporting", total=None)
        result = export_reviewed(
            conn,
            settings.blob_dir,
            out,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    _console.print(
        f"{result.photos} photos, {result.labels} boxes written to {out} "
        f"({result.skipped_undecided} still undecided, {result.skipped_missing} missing)"
    )


def export_records_command(
    out: Annotated[Path, typer.Option("--out", help="CSV file to write")],
    lang: Annotated[str, typer.Option(help="ja (MLIT headings) or en")] = "ja",
    config: ConfigOption = None,
) -> None:
    """Write the inspection record (asset, member, damage, grade, date, inspector)."""
    from api.exports import export_records
    from mamori.stack import database_url
    from store.db import connect

    settings = _settings(config)
    with database_url(settings.database) as url, connect(url) as conn:
        rows = export_records(conn, out, lang=lang)
    _console.print(f"{rows} graded members written to {out}")


def register(app: typer.Typer) -> None:
    """Add the commands to ``app`` (the ``mamori api`` group)."""
    app.command("run")(run)
    app.command("create-user")(create_user)
    app.command("create-api-key")(create_api_key)
    app.command("export-reviewed")(export_reviewed_command)
    app.command("export-records")(export_records_command)
