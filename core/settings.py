"""Settings models for every service.

Each service has its own settings class with its own environment prefix
(``MAMORI_INGEST_``, ``MAMORI_API_``, ...); nested groups use ``__``
(``MAMORI_INGEST_MQTT__HOST``). A YAML file may supply the same keys; the environment
wins over the file, so one file can serve many replicas that differ by a variable.

Nothing is read at import time: ``main()`` calls :func:`load_settings` and passes the
result down. Secrets are ``SecretStr`` so they never reach a log line or a
``validate-config`` printout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigError
from core.logs import LogFormat
from core.retention import MaintenanceSettings

#: Placeholder values that must never run in production; settings refuse them.
_DEFAULT_SECRETS = frozenset({"", "changeme", "change-me", "secret", "password", "admin"})


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Group):
    ca_file: Path
    cert_file: Path | None = None
    key_file: Path | None = None

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


class MqttSettings(_Group):
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: TlsSettings | None = None
    topic_prefix: str = Field(default="mamori", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT 5 gives shared subscriptions and receive-maximum backpressure; "
        "3.1.1 is for brokers without it (the embedded Python broker)",
    )
    session_expiry_s: int = Field(
        default=3600, ge=0, description="how long the broker keeps our queue while we are away"
    )

    def url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


class DatabaseSettings(_Group):
    url: SecretStr | None = Field(
        default=None,
        description="libpq URL; unset means an embedded PostgreSQL under embedded_dir",
    )
    embedded_dir: Path = Path("var/pgdata")
    pool_size: int = Field(default=4, ge=1, le=100)
    maintenance: MaintenanceSettings = MaintenanceSettings()


class LogSettings(_Group):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: LogFormat = "text"


class MamoriSettings(BaseSettings):
    """Base of every service's settings: env beats the YAML file, which beats defaults."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="forbid")

    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init_settings carries the YAML file's contents (see load_settings), so it
        # comes after the environment.
        return env_settings, init_settings, file_secret_settings

    def redacted(self) -> dict[str, Any]:
        """A JSON-safe view with every secret masked, for ``validate-config``."""
        result: dict[str, Any] = self.model_dump(mode="json")
        return result


class DatabaseServiceSettings(MamoriSettings):
    database: DatabaseSettings = DatabaseSettings()


class DbSettings(DatabaseServiceSettings):
    """``mamori db``: migrations and maintenance."""

    model_config = SettingsConfigDict(env_prefix="MAMORI_DB_")


class IngestSettings(DatabaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_INGEST_")

    mqtt: MqttSettings = MqttSettings()
    client_id: str = Field(default="mamori-ingest-1", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    share_group: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description=(
            "set (e.g. 'ingest') to share the load among replicas through $share; unset, one "
            "replica with a plain subscription. Mosquitto 2.0 loses messages published to a "
            "shared subscription between a broker restart and the subscriber's reconnect; a "
            "plain persistent subscription loses none (docs/operations.md)"
        ),
    )
    batch_max_rows: int = Field(default=5000, ge=1, le=1_000_000)
    flush_interval_ms: int = Field(default=200, ge=1, le=60_000)
    max_inflight_messages: int = Field(
        default=2000, ge=1, le=65535, description="unacknowledged messages the broker may send"
    )
    max_payload_bytes: int = Field(default=512 * 1024, ge=1024, le=64 * 1024 * 1024)
    future_tolerance_s: int = Field(default=300, ge=0, description="accept clocks this far ahead")
    past_limit_days: int = Field(default=35, ge=1, description="older readings dead-letter")
    blob_dir: Path = Field(default=Path("var/blobs"), description="photo blob store root")
    max_photo_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    max_photo_chunks: int = Field(default=4096, ge=1, le=10_000)
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve Prometheus metrics on this port"
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        pattern=r"^[0-9A-Za-z.:-]{1,253}$",
        description="address for the metrics port; 0.0.0.0 for a scraper in another "
        "container (the metrics are unauthenticated: keep the port off public networks)",
    )


class SimulatedSensor(_Group):
    """A simulated sensor replaying the Yamaguchi heavy-rain event (for demos and tests)."""

    kind: Literal["simulated"] = "simulated"
    model: Literal["river_level", "rain_gauge", "slope", "bridge_accel", "bridge_strain"]
    speed: float = Field(default=1.0, gt=0, le=100_000, description="event hours per real hour")
    seed: int = 0


class StreamSensor(_Group):
    """Readings a gateway already has: lines of CSV (``ts,metric,value``) or NDJSON from a
    serial port, a file or a named pipe."""

    kind: Literal["stream"] = "stream"
    path: Path
    format: Literal["csv", "ndjson"] = "ndjson"
    follow: bool = Field(default=True, description="keep reading as the file grows")


class EdgeSettings(MamoriSettings):
    """One device or gateway: ``mamori edge run --config device.yaml``."""

    model_config = SettingsConfigDict(env_prefix="MAMORI_EDGE_")

    mqtt: MqttSettings = MqttSettings()
    site: str = Field(default="demo", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    device: str = Field(default="device-1", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    firmware: str = Field(default="mamori-edge/0.1", max_length=64)
    outbox_path: Path = Path("var/outbox.sqlite3")
    outbox_max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    batch_max_readings: int = Field(default=200, ge=1, le=5000)
    batch_max_latency_s: float = Field(default=5.0, gt=0, le=3600)
    sensors: list[Annotated[SimulatedSensor | StreamSensor, Field(discriminator="kind")]] = []


class InspectSettings(DatabaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_INSPECT_")

    blob_dir: Path = Path("var/blobs")
    detector: Literal["onnx", "classical"] = "classical"
    model_path: Path | None = None
    threads: int = Field(default=2, ge=1, le=64)


class AlertsSettings(DatabaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_ALERTS_")

    mqtt: MqttSettings = MqttSettings()
    share_group: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$",
        description="a shared subscription group; unset, a plain one (see IngestSettings)",
    )
    rules_file: Path | None = None
    tick_s: float = Field(default=10.0, gt=0, le=3600)
    client_id: str = Field(
        default="mamori-alerts-1",
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="the MQTT session the engine consumes; a standby uses the same one",
    )
    instance: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="this engine among active and standby ones; default the host name",
    )
    lease_ttl_s: float = Field(
        default=30.0,
        ge=5,
        le=600,
        description="a standby takes over this long after the active engine stopped renewing",
    )


class ApiSettings(DatabaseServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_API_")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr = Field(description="signs login tokens; at least 32 characters")
    token_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    blob_dir: Path = Path("var/blobs")
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _refuse_default_secret(self) -> ApiSettings:
        secret = self.secret_key.get_secret_value()
        if secret.lower() in _DEFAULT_SECRETS or len(secret) < 32:
            raise ValueError(
                "secret_key must be a real secret of at least 32 characters "
                "(for example: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return self


class DashboardsSettings(MamoriSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_DASHBOARDS_")

    grafana_url: str = "http://127.0.0.1:3000"
    grafana_token: SecretStr | None = None
    datasource_uid: str = "mamori-postgres"


class DemoSettings(MamoriSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_DEMO_")

    # The progress line is the demo's voice; service chatter would scroll it away.
    log: LogSettings = LogSettings(level="WARNING")
    database: DatabaseSettings = DatabaseSettings()
    mqtt_host: str | None = Field(
        default=None, description="use this broker instead of starting one"
    )
    mqtt_port: int = Field(default=1883, ge=1, le=65535)
    work_dir: Path = Path("var/demo")
    api_port: int = Field(default=8000, ge=0, le=65535, description="0 picks a free port")


_S = TypeVar("_S", bound=MamoriSettings)


def load_settings(cls: type[_S], config_file: Path | None = None) -> _S:
    """Build ``cls`` from an optional YAML file and the environment.

    Every problem (unreadable file, bad YAML, a value that fails validation) becomes a
    :class:`ConfigError` whose message names the offending keys.
    """
    data: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read {config_file}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{config_file} is not valid YAML: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file} must hold a mapping at the top level")
        data = loaded
    try:
        return cls(**data)
    except ValidationError as exc:
        source = f" in {config_file}" if config_file else ""
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors(include_url=False)
        ]
        prefix = cls.model_config.get("env_prefix", "")
        raise ConfigError(
            f"invalid {cls.__name__}{source} (environment prefix {prefix}):\n" + "\n".join(lines)
        ) from exc
