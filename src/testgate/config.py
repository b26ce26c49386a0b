"""Settings: read once at the edge (environment, prefix ``TESTGATE_``), validated, passed down.

Every secret setting can instead be read from a file: ``TESTGATE_<NAME>_FILE=/run/secrets/x`` (nested:
``TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET_FILE``), the convention of Docker and Kubernetes secrets. A setting
is secret when its type is ``SecretStr`` or its field says ``json_schema_extra={"secret": True}``.
"""

from __future__ import annotations

import os
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from testgate.config_checks import (
    BROKER_SCHEMES,
    DATABASE_SCHEMES,
    LOG_ALIASES,
    LOG_LEVELS,
    REDIS_SCHEMES,
    SettingError,
    is_fernet_key,
    secret_file,
    url_of,
)
from testgate.http.settings import HttpSettings
from testgate.ids import is_slug
from testgate.oauth.settings import OAuthSettings


def default_data_dir() -> Path:
    """The XDG data directory for testgate (``$XDG_DATA_HOME/testgate`` or ``~/.local/share/testgate``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "testgate"


def default_config_dir() -> Path:
    """The XDG config directory for testgate (CLI login contexts live here)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "testgate"


class RunnerSettings(BaseModel):
    """The executor and the bounds it enforces."""

    executor: Literal["local", "celery"] = Field(
        default="local", description="local: subprocesses of the server; celery: worker machines"
    )
    concurrency: int = Field(default=4, ge=1, le=256, description="executions run at once by one runner")
    default_step_timeout: float = Field(
        default=3600.0, gt=0, description="seconds a step may run without its own timeout"
    )
    max_log_line_bytes: int = Field(default=8192, ge=256, description="longer lines are cut with a marker")
    max_log_bytes: int = Field(
        default=10 * 1024 * 1024, ge=4096, description="an execution's whole log; then it is cut"
    )
    max_artifact_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, description="larger files are not kept")
    max_artifacts_total_bytes: int = Field(default=500 * 1024 * 1024, ge=1024, description="per execution")
    max_artifact_files: int = Field(default=1000, ge=1, description="per execution")
    max_junit_bytes: int = Field(default=50 * 1024 * 1024, ge=1024, description="per JUnit XML file")
    heartbeat_seconds: float = Field(default=5.0, gt=0, description="how often a running execution proves it is alive")
    kill_grace_seconds: float = Field(default=3.0, ge=0, description="SIGTERM to SIGKILL of a step's process group")
    git_timeout: float = Field(default=120.0, gt=0, description="seconds a git clone of spec.content may take")


class CelerySettings(BaseModel):
    """The Celery executor: broker, queue names, sealing of sensitive values, and lost workers."""

    broker_url: SecretStr | None = Field(default=None, description="amqp://… or redis://…; required for celery")
    queue_prefix: str = Field(
        default="testgate", pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$", description="prefix of every queue name"
    )
    secrets_key: SecretStr | None = Field(
        default=None, description="Fernet key(s), comma-separated, newest first; default: a key file in data_dir"
    )
    on_lost: Literal["fail", "requeue"] = Field(
        default="fail", description="what happens to an execution whose worker died"
    )
    max_attempts: int = Field(default=3, ge=1, le=20, description="runs of one execution, requeues included")
    queue_timeout: float = Field(default=0, ge=0, description="seconds queued before it fails; 0: no limit")
    publish_timeout: float = Field(default=10.0, gt=0, description="seconds a submit may take to reach the broker")
    notify_url: SecretStr | None = Field(default=None, description="redis://… for live notifications (pub/sub)")
    broker_transport_options: dict[str, Any] = Field(
        default_factory=dict, description="passed to Celery (e.g. visibility_timeout for Redis)"
    )

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: SecretStr | None) -> SecretStr | None:
        # Empty is unset (Celery would quietly take its own default broker, amqp://guest@localhost).
        return url_of(value, BROKER_SCHEMES, "an amqp://… or redis://… URL")

    @field_validator("notify_url")
    @classmethod
    def _notify(cls, value: SecretStr | None) -> SecretStr | None:
        return url_of(value, REDIS_SCHEMES, "a redis://… URL")

    @field_validator("secrets_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = [k.strip() for k in value.get_secret_value().split(",") if k.strip()]
        if not keys or not all(is_fernet_key(k) for k in keys):
            raise ValueError(
                "each key must be a Fernet key, 32 url-safe base64-encoded bytes: "
                'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
            )
        return value


class ArtifactSettings(BaseModel):
    """Where kept artifacts live: a directory (shared by every machine with workers), or an S3 bucket."""

    store: Literal["filesystem", "s3"] = Field(
        default="filesystem", description="filesystem: a directory (path); s3: S3-compatible object storage"
    )
    path: Path | None = Field(
        default=None,
        description="the filesystem store's directory (a shared mount with workers); default data_dir/artifacts",
    )
    s3_bucket: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9.\-_]{1,255}$", description="the bucket; required for store=s3"
    )
    s3_prefix: str = Field(
        default="", max_length=200, description="key prefix inside the bucket: objects are `prefix/execution id/path`"
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="http(s)://host:port of MinIO, Ceph RGW, R2…; unset: AWS S3 of s3_region",
    )
    s3_region: str | None = Field(default=None, description="region name; unset: the AWS SDK's default chain")
    s3_access_key_id: SecretStr | None = Field(
        default=None, description="with s3_secret_access_key; unset: the AWS SDK's chain (environment, role)"
    )
    s3_secret_access_key: SecretStr | None = Field(default=None, description="the secret of s3_access_key_id")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="path: endpoint/bucket/key (MinIO, Ceph); virtual: bucket.endpoint/key"
    )
    s3_ca_bundle: Path | None = Field(
        default=None, description="CA certificates (PEM) to verify the endpoint with instead of the system's"
    )

    @field_validator("s3_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return value.strip("/")

    @model_validator(mode="after")
    def _complete(self) -> ArtifactSettings:
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("store=s3 needs a bucket: set TESTGATE_ARTIFACTS__S3_BUCKET")
        if (self.s3_access_key_id is None) != (self.s3_secret_access_key is None):
            raise ValueError("set both s3_access_key_id and s3_secret_access_key, or neither")
        return self


class Settings(BaseSettings):
    """Everything testgate is configured by. ``TESTGATE_RUNNER__CONCURRENCY=8`` sets a nested field."""

    model_config = SettingsConfigDict(
        env_prefix="TESTGATE_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="embedded database, workspaces, artifacts, generated keys ($XDG_DATA_HOME/testgate)",
    )
    config_dir: Path = Field(
        default_factory=default_config_dir, description="CLI login credentials ($XDG_CONFIG_HOME/testgate)"
    )
    # A database URL carries its password.
    database_url: str | None = Field(
        default=None,
        json_schema_extra={"secret": True},
        description="postgresql://… (scale-out); unset: SQLite in the data directory",
    )
    database_echo: bool = Field(default=False, description="log every SQL statement")
    database_pool_size: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="database connections each process keeps open (unset: 20)",
    )
    database_pool_overflow: int | None = Field(
        default=None,
        ge=0,
        le=1000,
        description="connections opened beyond the pool while it is all in use, closed when returned; a "
        "call finding both taken waits for one (unset: 0 on SQLite, 10 on PostgreSQL)",
    )
    access_cache_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="how long a verified token and a resolved environment are reused; every change to "
        "access made through testgate ends them at once (0: verify every request against the store)",
    )
    host: str = Field(default="127.0.0.1", description="address testgate serve listens on")
    port: int = Field(default=8080, ge=0, le=65535, description="port testgate serve listens on")
    public_url: str | None = Field(default=None, description="the URL people and agents reach this server at")
    default_organization: str = Field(default="default", description="created on first start")
    default_environment: str = Field(default="dev", description="created on first start")
    max_spec_bytes: int = Field(default=256 * 1024, ge=1024, description="largest workflow YAML")
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, description="largest JUnit results upload")
    audit_retention_days: int = Field(default=180, ge=1, le=36500, description="older audit events are purged")
    audit_file: Path | None = Field(default=None, description="append every audit event here as JSON lines (0600)")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="auto: console on a TTY, else JSON (every line, the start banner and setup link included)",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING, ERROR")
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    celery: CelerySettings = Field(default_factory=CelerySettings)
    artifacts: ArtifactSettings = Field(default_factory=ArtifactSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis://… shared by replicas (rate limits, MCP confirmation nonces); unset: in-process memory",
    )
    mcp_state_key: SecretStr | None = Field(
        default=None,
        description="keys (>= 32 characters, comma-separated, newest first) sealing 2026-era MCP requestState; "
        "share them across replicas; unset: a key file in data_dir",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, SecretFiles(settings_cls), dotenv_settings, file_secret_settings

    @field_validator("mcp_state_key")
    @classmethod
    def _state_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(len(k.strip()) < 32 for k in value.get_secret_value().split(",")):
            raise ValueError(
                'each MCP state key needs >= 32 characters: python -c "import secrets; print(secrets.token_hex(32))"'
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        checked = url_of(
            SecretStr(value) if value is not None else None, DATABASE_SCHEMES, "a PostgreSQL or SQLite URL"
        )
        return checked.get_secret_value() if checked is not None else None  # stripped by url_of

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: SecretStr | None) -> SecretStr | None:
        return url_of(value, REDIS_SCHEMES, "a redis://… URL")

    @field_validator("public_url")
    @classmethod
    def _public(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("must be the http(s)://host[:port][/path] people and agents reach this server at")
        return value.strip()

    @field_validator("default_organization", "default_environment")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not is_slug(value):
            raise ValueError("must be a slug: lowercase letters, digits and inner '-', at most 63 characters")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = LOG_ALIASES.get(value.strip().upper(), value.strip().upper())
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("data_dir", "config_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        value = value.expanduser()
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a directory")
        return value

    @property
    def shared_redis_url(self) -> str | None:
        """The Redis replicas share (rate limits, confirmation nonces), as a plain URL; None without one."""
        return self.redis_url.get_secret_value() if self.redis_url is not None else None

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'testgate.db'}"

    @property
    def base_url(self) -> str:
        """The URL people and agents reach this server at (used in links)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if self.http.tls_cert is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def artifacts_dir(self) -> Path:
        """The filesystem store's directory."""
        return self.artifacts.path.expanduser() if self.artifacts.path else self.data_dir / "artifacts"


def env_variable(*path: str) -> str:
    """The environment variable of a setting given by its path (``env_variable("runner", "concurrency")``
    is ``TESTGATE_RUNNER__CONCURRENCY``)."""
    config = Settings.model_config
    return str(config["env_prefix"]) + str(config["env_nested_delimiter"]).join(part.upper() for part in path)


class SecretFiles(PydanticBaseSettingsSource):
    """The ``_FILE`` variant of every secret setting, nested groups included (a value and its file: an error)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str] | None = None) -> None:
        super().__init__(settings_cls)
        source = os.environ if environ is None else environ
        self.environ = {k.upper(): v for k, v in source.items()}

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # values come from __call__, which walks nested groups

    def __call__(self) -> dict[str, Any]:
        prefix = str(self.config.get("env_prefix", "")).upper()
        delimiter = str(self.config.get("env_nested_delimiter") or "__")
        return self._collect(self.settings_cls, prefix, delimiter)

    def _collect(self, model: type[BaseModel], prefix: str, delimiter: str) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, info in model.model_fields.items():
            variable = prefix + name.upper()
            group = _model_of(info.annotation)
            if group is not None:
                nested = self._collect(group, variable + delimiter, delimiter)
                if nested:
                    found[name] = nested
            elif _is_secret(info) and variable + "_FILE" in self.environ:
                if variable in self.environ:
                    raise SettingError(variable, f"set {variable} or {variable}_FILE, not both")
                found[name] = secret_file(variable + "_FILE", self.environ[variable + "_FILE"])
        return found


def _is_secret(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    flagged = isinstance(extra, dict) and extra.get("secret") is True
    return flagged or SecretStr in (info.annotation, *get_args(info.annotation))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings group a field holds (``X`` or ``X | None``), if any."""
    options = get_args(annotation) if get_origin(annotation) in (Union, types.UnionType) else (annotation,)
    for option in options:
        if isinstance(option, type) and issubclass(option, BaseModel):
            return option
    return None
