"""``mamori dashboards push`` against a small Grafana HTTP API served on 127.0.0.1.

No Grafana runs here; the server keeps folders and dashboards as Grafana's API does
(``/api/folders``, ``/api/dashboards/db``, ``/api/dashboards/uid/<uid>``), checks the
bearer token and refuses writes to provisioned dashboards, so the real grafana-client
speaks real HTTP to it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import typer
from typer.testing import CliRunner

from dashboards.build import FOLDER_UID, dashboard_json
from dashboards.catalog import all_dashboards
from dashboards.client import PushError, connect, push
from mamori.commands.dashboards import register

TOKEN = "glsa_test_token_0123456789"


@dataclass
class FakeGrafana:
    folders: dict[str, dict[str, object]] = field(default_factory=dict)
    dashboards: dict[str, dict[str, object]] = field(default_factory=dict)
    provisioned: set[str] = field(default_factory=set)
    writes: list[str] = field(default_factory=list)
    url: str = ""


def _handler(state: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self._reply(401, {"message": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            if not self._authorised():
                return
            if self.path.startswith("/api/folders/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.folders:
                    self._reply(200, state.folders[uid])
                else:
                    self._reply(404, {"message": "folder not found"})
            elif self.path.startswith("/api/dashboards/uid/"):
                uid = self.path.rsplit("/", 1)[1]
                if uid in state.dashboards:
                    self._reply(200, state.dashboards[uid])
                else:
                    self._reply(404, {"message": "Dashboard not found"})
            else:
                self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            if not self._authorised():
                return
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/api/folders":
                state.writes.append(f"folder {body['uid']}")
                state.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
                self._reply(200, state.folders[body["uid"]])
            elif self.path == "/api/dashboards/db":
                dashboard = body["dashboard"]
                uid = dashboard["uid"]
                if uid in state.provisioned:
                    self._reply(400, {"message": "Cannot save provisioned dashboard"})
                    return
                if body["folderUid"] not in state.folders:
                    self._reply(400, {"message": "folder not found"})
                    return
                old = state.dashboards.get(uid)
                version = 1 if old is None else int(old["dashboard"]["version"]) + 1  # type: ignore[index]
                state.writes.append(f"dashboard {uid}")
                state.dashboards[uid] = {
                    "dashboard": {**dashboard, "id": 7, "version": version},
                    "meta": {"folderUid": body["folderUid"]},
                }
                self._reply(200, {"status": "success", "uid": uid, "version": version})
            else:
                self._reply(404, {"message": "not found"})

    return Handler


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _documents(uid: str = "mamori-postgres") -> list[dict[str, object]]:
    return [dashboard_json(d, uid) for d in all_dashboards()]


def test_push_creates_the_folder_and_every_dashboard_then_changes_nothing(
    grafana: FakeGrafana,
) -> None:
    api = connect(grafana.url, TOKEN)
    first = push(api, _documents(), folder_uid=FOLDER_UID, folder_title="Mamori")
    assert first.folder_created
    assert sorted(first.created) == sorted(d.uid for d in all_dashboards())
    assert grafana.writes[0] == f"folder {FOLDER_UID}"
    writes = len(grafana.writes)

    again = push(api, _documents(), folder_uid=FOLDER_UID, folder_title="Mamori")
    assert not again.folder_created
    assert again.created == again.updated == []
    assert len(again.unchanged) == 5
    assert len(grafana.writes) == writes, "an unchanged push writes nothing"


def test_push_overwrites_a_changed_dashboard_by_uid(grafana: FakeGrafana) -> None:
    api = connect(grafana.url, TOKEN)
    push(api, _documents(), folder_uid=FOLDER_UID, folder_title="Mamori")
    stored = grafana.dashboards["mamori-rivers"]["dashboard"]
    assert isinstance(stored, dict)
    stored["title"] = "edited by hand"

    report = push(api, _documents(), folder_uid=FOLDER_UID, folder_title="Mamori")
    assert report.updated == ["mamori-rivers"]
    fixed = grafana.dashboards["mamori-rivers"]["dashboard"]
    assert isinstance(fixed, dict)
    assert fixed["title"] == "河川と雨量 / Rivers and rainfall"
    assert fixed["version"] == 2


def test_push_with_another_datasource_uid_updates_every_dashboard(grafana: FakeGrafana) -> None:
    api = connect(grafana.url, TOKEN)
    push(api, _documents(), folder_uid=FOLDER_UID, folder_title="Mamori")
    report = push(api, _documents("centre-pg"), folder_uid=FOLDER_UID, folder_title="Mamori")
    assert len(report.updated) == 5
    stored = json.dumps(grafana.dashboards["mamori-overview"])
    assert "centre-pg" in stored
    assert "mamori-postgres" not in stored


def test_a_wrong_token_is_a_push_error(grafana: FakeGrafana) -> None:
    with pytest.raises(PushError, match="Unauthorized"):
        push(connect(grafana.url, "wrong"), _documents(), folder_uid="mamori", folder_title="M")


def test_a_provisioned_dashboard_is_refused_with_a_hint(grafana: FakeGrafana) -> None:
    grafana.provisioned.add("mamori-overview")
    with pytest.raises(PushError, match="provisions the dashboards from files"):
        push(connect(grafana.url, TOKEN), _documents(), folder_uid="mamori", folder_title="M")


def test_an_unreachable_grafana_is_a_push_error() -> None:
    with pytest.raises(PushError):
        push(
            connect("http://127.0.0.1:9", TOKEN, timeout_s=2),
            _documents(),
            folder_uid="mamori",
            folder_title="M",
        )


def test_the_push_command(grafana: FakeGrafana, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMORI_DASHBOARDS_GRAFANA_TOKEN", TOKEN)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    result = runner.invoke(app, ["push", "--url", grafana.url])
    assert result.exit_code == 0, result.output
    assert "5 created" in result.output
    result = runner.invoke(app, ["push", "--url", grafana.url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    assert "5 unchanged" in result.output
