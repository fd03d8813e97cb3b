"""``mamori db maintain``: the store's upkeep, once, with a report of what it did.

Wired onto the ``mamori db`` group by ``mamori.cli`` (``register(db_app)``). Services run
the same jobs on a schedule with :class:`store.maintenance.MaintenanceScheduler`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from core.logs import setup_logging
from core.settings import DbSettings, load_settings

_console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; environment variables win over it."),
]


def register(app: typer.Typer) -> None:
    """Add ``maintain`` to ``app``, the ``mamori db`` group."""

    @app.command("maintain")
    def maintain(
        config: ConfigOption = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the report as one JSON object.")
        ] = False,
        migrate_first: Annotated[
            bool, typer.Option("--migrate/--no-migrate", help="Apply pending migrations first.")
        ] = True,
    ) -> None:
        """Run the store's upkeep once: refresh rollups, make partitions, drop expired data.

        On TimescaleDB the server's policies do this work; the command makes the
        retention and compression policies match the settings.
        """
        from mamori.stack import database_url, migrate_url
        from store.maintenance import run_maintenance

        settings = load_settings(DbSettings, config)
        setup_logging(settings.log.level, settings.log.format)
        with database_url(settings.database) as url:
            if migrate_first:
                migrate_url(url)
            report = run_maintenance(url, settings.database.maintenance)
        if as_json:
            typer.echo(json.dumps(report.as_dict()))
        else:
            _console.print(report.summary())
