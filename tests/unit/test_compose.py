"""docker-compose.yml checked against the code, since no Docker engine runs here.

* the file follows the Compose specification (compose-spec's validating parser, after
  interpolating the variables the way compose does, with .env.example's placeholders);
* every Mamori service runs a real ``mamori`` subcommand with real options;
* every ``MAMORI_*`` variable has its service's prefix, names a real settings field and
  validates; secrets are required (``${VAR:?...}``), never defaulted, and listed in
  .env.example;
* every ``depends_on`` target exists and can satisfy its condition (a healthcheck for
  ``service_healthy``, a one-shot for ``service_completed_successfully``);
* every mounted file or folder exists in the repository, every named volume is declared,
  and what the services read through mounts (rules, device config, provisioning) is there.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import compose_spec
import pytest
import typer
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from alerts.ruleset import load_rules
from core.settings import (
    AlertsSettings,
    ApiSettings,
    DashboardsSettings,
    DbSettings,
    EdgeSettings,
    IngestSettings,
    MamoriSettings,
    load_settings,
)
from core.topics import Topics
from inspection_models.settings import InspectionSettings
from mamori.broker_auth import service_accounts
from mamori.cli import app as cli_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

#: The settings class each ``mamori`` group loads (``inspect`` extends InspectSettings).
SETTINGS: dict[str, type[MamoriSettings]] = {
    "db": DbSettings,
    "broker": DbSettings,
    "ingest": IngestSettings,
    "alerts": AlertsSettings,
    "inspect": InspectionSettings,
    "api": ApiSettings,
    "edge": EdgeSettings,
    "dashboards": DashboardsSettings,
}
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
)
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")


def _raw() -> str:
    """The file without its comments (compose interpolates values, not comments)."""
    lines = COMPOSE.read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group("name"), match.group("op"), match.group("arg")
        if name in env and (env[name] or not (op or "").startswith(":")):
            return env[name]
        if op in {"?", ":?"}:
            raise AssertionError(f"compose would refuse to start: {name}: {arg}")
        return arg or ""

    return _INTERPOLATION.sub(replace, text)


def _interpolate_values(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_interpolate_values(item, env) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_values(value, env) for key, value in node.items()}
    return node


def _compose(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Parsed (YAML merge keys resolved), then interpolated, as compose does."""
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    result = _interpolate_values(data, _env_example() if env is None else env)
    assert isinstance(result, dict)
    return result


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _mamori_services() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, service in _services().items():
        if str(service.get("image", "")).startswith("mamori:"):
            yield name, service


def _group(service: Mapping[str, Any]) -> str:
    command = service["command"]
    assert command[0] == "mamori", command
    return str(command[1])


# ------------------------------------------------------------------ the specification


def test_the_file_follows_the_compose_specification() -> None:
    spec = compose_spec.PyCompose.from_json(json.dumps(_compose())).to_spec()
    assert spec.services is not None
    assert set(spec.services) == set(_services())


def test_the_validator_catches_a_misspelt_condition() -> None:
    broken = _compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_complete"
    with pytest.raises(ValueError, match="service_complete"):
        compose_spec.PyCompose.from_json(json.dumps(broken)).to_spec()


# ----------------------------------------------------------------------------- secrets


def test_secrets_are_required_never_defaulted_and_listed_in_env_example() -> None:
    example = _env_example()
    required = set()
    for match in _INTERPOLATION.finditer(_raw()):
        name, op = match.group("name"), match.group("op")
        if _SECRET_NAME.search(name):
            assert op == ":?", f"${{{name}}} must be ${{{name}:?message}}: no default"
        if op in {"?", ":?"}:
            required.add(name)
            assert name in example, f"{name} is required but missing from .env.example"
    assert {"POSTGRES_PASSWORD", "MAMORI_API_SECRET_KEY", "GRAFANA_ADMIN_PASSWORD"} <= required
    assert not re.search(r"\$[A-Za-z_]", _raw()), "use ${VAR:?...}, never a bare $VAR"


def test_no_secret_is_written_in_the_file() -> None:
    for name, service in _services().items():
        raw_env = yaml.safe_load(COMPOSE.read_text("utf-8"))["services"][name].get("environment")
        raw_env = raw_env or {}
        for key, value in raw_env.items():
            text = str(value)
            if _SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[^}]+\}", text), f"{name}: {key}"
            if "://" in text and "@" in text:
                credentials = text.split("://", 1)[1].split("@", 1)[0]
                assert "${" in credentials, f"{name}: {key} has a password in its URL"
        del service


def test_a_missing_secret_stops_compose() -> None:
    example = _env_example()
    del example["POSTGRES_PASSWORD"]
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD"):
        _compose(example)


# ---------------------------------------------------------------------------- commands


def _subcommands(command: Any) -> dict[str, Any] | None:
    """A group's commands; None for a command. (Typer vendors click: duck typing.)"""
    found = getattr(command, "commands", None)
    return found if isinstance(found, dict) else None


def _command_tree() -> Any:
    """``mamori`` with every group's commands, wired or still waiting to be.

    ``mamori.commands.<group>.register`` adds commands to a group; the lead wires them
    into ``mamori.cli``. Until then their commands are taken from a fresh group, so the
    compose file can name them.
    """
    root = typer.main.get_command(cli_app)
    groups = _subcommands(root)
    assert groups is not None
    for group_name in SETTINGS:
        try:
            module = importlib.import_module(f"mamori.commands.{group_name}")
        except ModuleNotFoundError:
            continue
        register = getattr(module, "register", None)
        if register is None:
            continue
        extra = typer.Typer()
        register(extra)
        # A Typer with one command collapses into it; a hidden second keeps it a group.
        extra.command("_placeholder", hidden=True)(lambda: None)
        added = _subcommands(typer.main.get_command(extra))
        target = _subcommands(groups[group_name])
        assert added is not None
        assert target is not None
        for name, command in added.items():
            if name != "_placeholder":
                target.setdefault(name, command)
    return root


def _resolve(tree: Any, argv: list[str]) -> tuple[Any, list[str]]:
    command = tree
    rest = list(argv)
    while (children := _subcommands(command)) is not None and rest:
        name = rest.pop(0)
        assert name in children, f"`{name}` is not a subcommand of {command.name}"
        command = children[name]
    assert _subcommands(command) is None, f"{argv} names a group, not a command"
    return command, rest


def test_every_mamori_service_runs_a_real_command_with_real_options() -> None:
    tree = _command_tree()
    seen = set()
    for name, service in _mamori_services():
        argv = service["command"]
        assert argv[0] == "mamori", name
        command, rest = _resolve(tree, argv[1:])
        options = {opt for p in command.params for opt in getattr(p, "opts", [])}
        for arg in rest:
            if arg.startswith("-"):
                assert arg.split("=")[0] in options, f"{name}: {arg} is not an option"
        seen.add(" ".join(argv[1:3]))
    for needed in ("db migrate", "ingest run", "alerts run", "inspect run", "api run"):
        assert needed in seen, f"no service runs `mamori {needed}`"


# ---------------------------------------------------------------------------- settings


def _field_path(model: type[BaseModel], parts: list[str]) -> bool:
    fields = {n.lower(): f for n, f in model.model_fields.items()}
    head = parts[0].lower()
    if head not in fields:
        return False
    if len(parts) == 1:
        return True
    annotation = fields[head].annotation
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    return any(
        isinstance(c, type) and issubclass(c, BaseModel) and _field_path(c, parts[1:])
        for c in candidates
    )


def test_every_variable_names_a_real_setting_of_its_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, service in _mamori_services():
        cls = SETTINGS[_group(service)]
        prefix = str(cls.model_config.get("env_prefix", ""))
        assert prefix.startswith("MAMORI_")
        environment = service.get("environment") or {}
        for key in environment:
            assert key.startswith(prefix), f"{name}: {key} lacks the prefix {prefix}"
            path = key.removeprefix(prefix).split("__")
            assert _field_path(cls, path), f"{name}: {key} is not a field of {cls.__name__}"
        # And the values validate, as the service will load them.
        with monkeypatch.context() as env:
            for key, value in environment.items():
                env.setenv(key, str(value))
            settings = load_settings(cls)
            assert isinstance(settings, BaseSettings)


def test_services_log_in_to_the_broker_with_their_accounts() -> None:
    accounts = {a.username for a in service_accounts(Topics("mamori"))}
    for name, service in _mamori_services():
        env = service.get("environment") or {}
        for key, value in env.items():
            if key.endswith("_MQTT__USERNAME") and _group(service) != "edge":
                assert value in accounts, f"{name}: the broker has no account {value}"


def test_ingest_replicas_have_their_own_client_ids_and_share_only_when_told() -> None:
    ingest = [s for _, s in _mamori_services() if s["command"][1:3] == ["ingest", "run"]]
    assert ingest
    ids = [s["environment"]["MAMORI_INGEST_CLIENT_ID"] for s in ingest]
    assert len(set(ids)) == len(ids), "replicas with one client id would evict each other"
    groups = {s["environment"].get("MAMORI_INGEST_SHARE_GROUP") for s in ingest}
    # One replica: a plain subscription (lossless across Mosquitto restarts). Several: one
    # share group for all, or each would store everything.
    assert groups == {None} if len(ingest) == 1 else len(groups) == 1 and None not in groups


# -------------------------------------------------------------------------- depends_on


def test_every_dependency_exists_and_can_satisfy_its_condition() -> None:
    services = _services()
    for name, service in services.items():
        for target, rule in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            assert "profiles" not in services[target] or "profiles" in service, (
                f"{name} (always on) depends on {target}, which only runs in a profile"
            )
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} is not a one-shot"
            else:
                pytest.fail(f"{name} waits for {target} only to start ({condition})")


def test_long_running_services_restart_and_one_shots_do_not() -> None:
    for name, service in _services().items():
        if name in {"migrate", "broker-acl"}:
            assert service["restart"] == "no"
        else:
            assert service.get("restart") == "unless-stopped", name


# ---------------------------------------------------------------------- images, mounts


def _mounts(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = []
    for volume in service.get("volumes") or []:
        source, target = str(volume).split(":")[:2]
        pairs.append((source, target))
    return pairs


def _host_path(service: Mapping[str, Any], container_path: str) -> Path:
    """The repository file a bind mount shows at ``container_path``."""
    wanted = PurePosixPath(container_path)
    for source, target in _mounts(service):
        if source.startswith("./") and wanted.is_relative_to(target):
            return ROOT / source / wanted.relative_to(target)
    raise AssertionError(f"{container_path} is not bind-mounted from the repository")


def test_every_mount_exists_and_every_volume_is_declared() -> None:
    declared = set(_compose().get("volumes") or {})
    used = set()
    for name, service in _services().items():
        for source, _target in _mounts(service):
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} is not in the repository"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"


def test_images_are_pinned_and_the_mamori_image_is_built_here() -> None:
    for name, service in _services().items():
        image = str(service["image"])
        if image.startswith("mamori:"):
            assert service["build"]["context"] == "."
            assert (ROOT / service["build"]["dockerfile"]).is_file()
        else:
            tag = image.rsplit(":", 1)[-1]
            assert ":" in image, f"{name}: pin {image}"
            assert tag != "latest", f"{name}: pin {image}"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "FROM python:3.11-slim" in dockerfile
    assert 'pip install ".[server]"' in dockerfile
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert re.search(r"^server = \[", pyproject, re.MULTILINE)


def test_what_services_read_through_mounts_is_there() -> None:
    services = _services()
    rules = services["alerts"]["environment"]["MAMORI_ALERTS_RULES_FILE"]
    assert load_rules(_host_path(services["alerts"], rules)).rules
    simulator = services["edge-simulator"]
    config = simulator["command"][simulator["command"].index("--config") + 1]
    assert load_settings(EdgeSettings, _host_path(simulator, config)).sensors


def test_ports_match_the_settings() -> None:
    services = _services()
    api = services["api"]
    assert api["ports"] == [f"{api['environment']['MAMORI_API_PORT']}:8000"]
    assert api["environment"]["MAMORI_API_HOST"] == "0.0.0.0"
    assert "/api/v1/health" in " ".join(api["healthcheck"]["test"])
    for name, service in _mamori_services():
        if service["command"][1:3] == ["ingest", "run"]:
            port = service["environment"]["MAMORI_INGEST_METRICS_PORT"]
            assert f":{port}/metrics" in " ".join(service["healthcheck"]["test"]), name


def test_mosquitto_reads_what_the_stack_provides() -> None:
    services = _services()
    mosquitto = services["mosquitto"]
    conf_path = _host_path(mosquitto, "/mosquitto/config/mosquitto.conf")
    conf = dict(
        line.split(None, 1)
        for line in conf_path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#") and " " in line
    )
    assert conf["allow_anonymous"] == "false"
    listeners = re.findall(r"^listener (\d+)", conf_path.read_text(encoding="utf-8"), re.M)
    assert listeners == ["1883", "8883"]
    assert mosquitto["ports"] == ["8883:8883"], "only the TLS listener is published"
    targets = {t: s for s, t in _mounts(mosquitto)}
    for key in ("password_file", "acl_file", "cafile", "certfile", "keyfile"):
        folder = str(PurePosixPath(conf[key]).parent)
        assert folder in targets, f"{key} {conf[key]} is not in a mounted folder"
    # broker-acl writes the ACL into the volume mosquitto reads it from.
    acl = services["broker-acl"]
    out = PurePosixPath(acl["command"][acl["command"].index("--out") + 1])
    acl_volume = targets[str(PurePosixPath(conf["acl_file"]).parent)]
    assert (acl_volume, str(out.parent)) in _mounts(acl)
    assert out.name == PurePosixPath(conf["acl_file"]).name


def test_grafana_gets_the_provisioning_and_everything_it_interpolates() -> None:
    grafana = _services()["grafana"]
    env = grafana["environment"]
    datasources = _host_path(grafana, "/etc/grafana/provisioning/datasources/mamori.yaml")
    wanted = set(re.findall(r"\$\{(MAMORI_GRAFANA_\w+)\}", datasources.read_text("utf-8")))
    assert wanted
    assert wanted <= set(env), wanted - set(env)
    provider = yaml.safe_load(
        _host_path(grafana, "/etc/grafana/provisioning/dashboards/mamori.yaml").read_text(
            encoding="utf-8"
        )
    )
    path = provider["providers"][0]["options"]["path"]
    assert sorted(p.name for p in _host_path(grafana, path).glob("*.json")) == [
        "bridges.json",
        "health.json",
        "overview.json",
        "rivers.json",
        "slopes.json",
    ]
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(grafana, home).is_file()
