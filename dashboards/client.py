"""Upload the dashboards to a running Grafana through its HTTP API (grafana-client).

Idempotent: the folder is created only when missing; a dashboard is written (by uid,
overwriting) only when what Grafana holds differs from what the generator makes, so a
second push changes nothing and adds no version to the dashboards' history.

This is for a Grafana that does not provision Mamori's dashboards from files (an existing
centre's Grafana, Grafana Cloud). The compose stack provisions them from files instead,
and Grafana refuses API writes to provisioned dashboards; :class:`PushError` says so.

Errors of grafana-client and of its HTTP library are translated here, the one boundary,
into :class:`PushError`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from core.errors import MamoriError

_log = logging.getLogger(__name__)

JsonObject = dict[str, object]
#: Fields Grafana assigns itself; they never make a dashboard "changed".
_GRAFANA_OWNED = frozenset({"id", "version"})


class PushError(MamoriError):
    """Grafana could not be reached, refused the token, or refused a dashboard."""


class _Folders(Protocol):
    def get_folder(self, uid: str) -> JsonObject: ...
    def create_folder(self, title: str, uid: str | None = None) -> JsonObject: ...


class _Dashboards(Protocol):
    def get_dashboard(self, dashboard_uid: str) -> JsonObject: ...
    def update_dashboard(self, dashboard: JsonObject) -> JsonObject: ...


class _Health(Protocol):
    def check(self) -> JsonObject: ...


class GrafanaApi(Protocol):
    """The part of ``grafana_client.GrafanaApi`` that push uses (it ships no types)."""

    folder: _Folders
    dashboard: _Dashboards
    health: _Health


def connect(url: str, token: str | None, *, timeout_s: float = 10.0) -> GrafanaApi:
    """A client for ``url``; ``token`` is a service-account token (Bearer).

    Without a token, credentials in the URL (``http://user:password@host:3000``) are used.
    """
    from grafana_client.api import GrafanaApi as _ClientApi

    return cast(GrafanaApi, _ClientApi.from_url(url, credential=token, timeout=timeout_s))


@dataclass(slots=True)
class PushReport:
    folder_created: bool = False
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        folder = "folder created, " if self.folder_created else ""
        return (
            f"{folder}{len(self.created)} created, {len(self.updated)} updated, "
            f"{len(self.unchanged)} unchanged"
        )


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def _http_errors() -> tuple[type[BaseException], ...]:
    import niquests
    from grafana_client.client import GrafanaException

    return (GrafanaException, niquests.exceptions.RequestException)


def _same(current: Mapping[str, object], wanted: Mapping[str, object]) -> bool:
    return all(current.get(k) == v for k, v in wanted.items() if k not in _GRAFANA_OWNED)


def _ensure_folder(api: GrafanaApi, uid: str, title: str) -> bool:
    errors = _http_errors()
    try:
        api.folder.get_folder(uid)
        return False
    except errors as exc:
        if _status(exc) != 404:
            raise
    _log.info("creating Grafana folder %s (%s)", uid, title)
    api.folder.create_folder(title, uid=uid)
    return True


def _current(api: GrafanaApi, uid: str) -> Mapping[str, object] | None:
    try:
        found = api.dashboard.get_dashboard(uid)
    except _http_errors() as exc:
        if _status(exc) == 404:
            return None
        raise
    return found


def push(
    api: GrafanaApi,
    dashboards: Sequence[JsonObject],
    *,
    folder_uid: str,
    folder_title: str,
    message: str = "mamori dashboards push",
) -> PushReport:
    """Make Grafana hold exactly ``dashboards`` in the folder ``folder_uid``."""
    report = PushReport()
    try:
        report.folder_created = _ensure_folder(api, folder_uid, folder_title)
        for wanted in dashboards:
            uid = str(wanted["uid"])
            found = _current(api, uid)
            if found is not None:
                body = found.get("dashboard")
                meta = found.get("meta")
                in_folder = isinstance(meta, Mapping) and meta.get("folderUid") == folder_uid
                if isinstance(body, Mapping) and in_folder and _same(body, wanted):
                    report.unchanged.append(uid)
                    continue
            api.dashboard.update_dashboard(
                {
                    "dashboard": {**wanted, "id": None},
                    "folderUid": folder_uid,
                    "overwrite": True,
                    "message": message,
                }
            )
            (report.created if found is None else report.updated).append(uid)
            _log.info("dashboard %s %s", uid, "created" if found is None else "updated")
    except _http_errors() as exc:
        status = _status(exc)
        hint = ""
        if status in {401, 403}:
            hint = " (the token needs the Editor role on the folder, or Admin to create it)"
        elif status == 400 and "provisioned" in str(exc).lower():
            hint = " (this Grafana provisions the dashboards from files; edit those instead)"
        raise PushError(f"Grafana refused the push: {exc}{hint}") from exc
    return report
