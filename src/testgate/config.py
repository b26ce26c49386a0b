"""Settings: read once at the edge (environment, prefix ``TESTGATE_``), validated, passed down."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    executor: Literal["local", "celery"] = "local"
    concurrency: int = Field(default=4, ge=1, le=256)
    default_step_timeout: float = Field(default=3600.0, gt=0, description="seconds")
    max_log_line_bytes: int = Field(default=8192, ge=256)
    max_log_bytes: int = Field(default=10 * 1024 * 1024, ge=4096)
    max_artifact_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_artifacts_total_bytes: int = Field(default=500 * 1024 * 1024, ge=1024)
    max_artifact_files: int = Field(default=1000, ge=1)
    max_junit_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    heartbeat_seconds: float = Field(default=5.0, gt=0)
    kill_grace_seconds: float = Field(default=3.0, ge=0)
    git_timeout: float = Field(default=120.0, gt=0)


class Settings(BaseSettings):
    """Everything testgate is configured by. ``TESTGATE_RUNNER__CONCURRENCY=8`` sets a nested field."""

    model_config = SettingsConfigDict(
        env_prefix="TESTGATE_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    data_dir: Path = Field(default_factory=default_data_dir)
    config_dir: Path = Field(default_factory=default_config_dir)
    database_url: str | None = None
    database_echo: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str | None = None
    default_organization: str = "default"
    default_environment: str = "dev"
    max_spec_bytes: int = Field(default=256 * 1024, ge=1024)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    audit_retention_days: int = Field(default=180, ge=1, le=36500)
    audit_file: Path | None = None
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: str = "INFO"
    runner: RunnerSettings = Field(default_factory=RunnerSettings)

    @field_validator("data_dir", "config_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

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
        return f"http://{host}:{self.port}"

    @property
    def workspaces_dir(self) -> Path:
        return self.data_dir / "workspaces"

    @property
    def artifacts_dir(self) -> Path:
        return self.data_dir / "artifacts"
