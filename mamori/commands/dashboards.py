"""``mamori dashboards build|push``: dashboards as code.

``register(app)`` adds the commands to the ``dashboards`` group that ``mamori.cli`` builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.logs import setup_logging
from core.settings import DashboardsSettings, load_settings

_console = Console()
_err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; environment variables win over it."),
]


def _settings(config: Path | None) -> DashboardsSettings:
    settings = load_settings(DashboardsSettings, config)
    setup_logging(settings.log.level, settings.log.format)
    return settings


def build(
    check: Annotated[
        bool,
        typer.Option("--check", help="Write nothing; exit 1 if the committed files differ."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Regenerate dashboards/json/*.json and the provisioning files from the code."""
    from dashboards.build import differing, write

    settings = _settings(config)
    if check:
        wrong = differing(settings.datasource_uid)
        for path in wrong:
            _err.print(f"[red]differs from the generator:[/] {path}")
        if wrong:
            _err.print("run `mamori dashboards build` and commit the result")
            raise typer.Exit(1)
        _console.print("dashboards are up to date")
        return
    changed = write(settings.datasource_uid)
    for path in changed:
        _console.print(f"wrote {path}")
    _console.print(f"{len(changed)} files changed")


def push(
    url: Annotated[
        str | None, typer.Option(help="Grafana URL; default settings.grafana_url.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Service-account token (Editor). Prefer MAMORI_DASHBOARDS_GRAFANA_TOKEN: "
            "a command line is visible to other users of the machine."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Upload every dashboard to Grafana by uid, into the Mamori folder (idempotent)."""
    from dashboards.build import FOLDER_TITLE, FOLDER_UID, dashboard_json
    from dashboards.catalog import all_dashboards
    from dashboards.client import connect
    from dashboards.client import push as push_all

    settings = _settings(config)
    secret = token
    if secret is None and settings.grafana_token is not None:
        secret = settings.grafana_token.get_secret_value()
    api = connect(url or settings.grafana_url, secret)
    documents = [dashboard_json(d, settings.datasource_uid) for d in all_dashboards()]
    report = push_all(api, documents, folder_uid=FOLDER_UID, folder_title=FOLDER_TITLE)
    _console.print(f"Grafana at {url or settings.grafana_url}: {report.summary()}")


def register(app: typer.Typer) -> None:
    """Add ``build`` and ``push`` to ``app``, the ``mamori dashboards`` group."""
    app.command("build")(build)
    app.command("push")(push)


__all__ = ["register"]
