"""Secrets from files (``TESTGATE_<NAME>_FILE``) for every secret setting, and the generated MCP state key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from testgate.config import SecretFiles, Settings
from testgate.http.settings import HttpSettings
from testgate.http.statekeys import state_keys

KEY = "k" * 40


def _secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")  # as `docker secret create` and editors leave them
    return str(path)


def test_every_secret_setting_can_come_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {
        "TESTGATE_DATABASE_URL_FILE": "postgresql+asyncpg://tg:pw@db/testgate",
        "TESTGATE_REDIS_URL_FILE": "redis://:pw@redis:6379/0",
        "TESTGATE_MCP_STATE_KEY_FILE": KEY,
        "TESTGATE_OAUTH__KEY_ENCRYPTION_SECRET_FILE": "signing-keys-secret",
        "TESTGATE_CELERY__BROKER_URL_FILE": "amqp://tg:pw@mq//",
        "TESTGATE_HTTP__TLS_KEY_PASSWORD_FILE": "pem-passphrase",
    }
    for index, (variable, value) in enumerate(files.items()):
        monkeypatch.setenv(variable, _secret(tmp_path, f"s{index}", value))

    settings = Settings(data_dir=tmp_path)

    assert settings.database_url == "postgresql+asyncpg://tg:pw@db/testgate"
    assert settings.redis_url == SecretStr("redis://:pw@redis:6379/0")
    assert settings.mcp_state_key == SecretStr(KEY)
    assert settings.oauth.key_encryption_secret == SecretStr("signing-keys-secret")
    assert settings.celery.broker_url == SecretStr("amqp://tg:pw@mq//")
    assert settings.http.tls_key_password == SecretStr("pem-passphrase")


def test_a_secret_and_its_file_together_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTGATE_REDIS_URL", "redis://a")
    monkeypatch.setenv("TESTGATE_REDIS_URL_FILE", _secret(tmp_path, "r", "redis://b"))

    with pytest.raises(ValueError, match="TESTGATE_REDIS_URL or TESTGATE_REDIS_URL_FILE"):
        Settings(data_dir=tmp_path)


def test_only_secret_settings_have_a_file_variant(tmp_path: Path) -> None:
    source = SecretFiles(Settings, {"TESTGATE_PORT_FILE": _secret(tmp_path, "p", "9999")})

    assert source() == {}


def test_without_the_setting_a_state_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")

    first, again = state_keys(settings), state_keys(settings)

    key_file = tmp_path / "data" / "mcp-state.key"
    assert first == again
    assert len(first[0]) == 64
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_a_state_key_others_can_read_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "mcp-state.key"
    key_file.write_text(KEY)
    key_file.chmod(0o644)

    with pytest.raises(PermissionError, match="chmod 600"):
        state_keys(Settings(data_dir=tmp_path))


def test_shared_state_keys_form_a_ring_newest_first(tmp_path: Path) -> None:
    newer, older = "n" * 32, "o" * 32
    settings = Settings(data_dir=tmp_path, mcp_state_key=f"{newer}, {older}")

    assert state_keys(settings) == [newer, older]
    with pytest.raises(ValueError, match="32 characters"):
        Settings(data_dir=tmp_path, mcp_state_key="short")


def test_list_settings_take_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TESTGATE_HTTP__CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TESTGATE_HTTP__TRUSTED_PROXIES", '["10.0.0.0/8", "192.0.2.1"]')

    http = Settings().http

    assert http.cors_origins == ["https://a.example", "https://b.example"]
    assert http.trusted_proxies == ["10.0.0.0/8", "192.0.2.1"]
    with pytest.raises(ValueError, match="not an origin"):
        HttpSettings(cors_origins=["*"])
    with pytest.raises(ValueError, match="go together"):
        HttpSettings(tls_cert=Path("/c.pem"))
