"""Documentation that is generated from the code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from testgate.cli.main import app
from testgate.settings_doc import reference

ROOT = Path(__file__).resolve().parents[2]


def test_the_configuration_reference_matches_the_settings() -> None:
    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == reference(), "regenerate: testgate config reference > docs/configuration.md"


def test_every_setting_is_documented_with_a_description() -> None:
    undocumented = [line for line in reference().splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert undocumented == []


def test_the_cli_prints_the_reference() -> None:
    result = CliRunner().invoke(app, ["config", "reference"])
    assert result.exit_code == 0
    assert result.output == reference()
