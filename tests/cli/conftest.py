"""CLI tests: the real Typer app invoked in-process (``CliRunner``) on a fresh data directory."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from testgate.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
JUNIT = ROOT.parent / "shared" / "data" / "junit" / "jenkins-junit-plugin"
# The example suite runs on this interpreter, which has pytest installed.
PYTHON = f"python={sys.executable}"


@dataclass
class Cli:
    """Invokes ``testgate`` with ``TESTGATE_DATA_DIR`` pointing into the test's own directory."""

    data_dir: Path
    examples: Path = EXAMPLES
    python: str = PYTHON

    @property
    def env(self) -> dict[str, str | None]:
        return {
            "TESTGATE_DATA_DIR": str(self.data_dir),
            "TESTGATE_DATABASE_URL": None,
            "TESTGATE_DEFAULT_ORGANIZATION": None,
            "TESTGATE_DEFAULT_ENVIRONMENT": None,
        }

    def __call__(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=input, env=self.env, catch_exceptions=False)

    def ok(self, *args: str) -> Result:
        """Invoke and require exit code 0."""
        result = self(*args)
        assert result.exit_code == 0, result.output
        return result

    @staticmethod
    def said(result: Result) -> str:
        """Stderr as one line of words, without the box Typer draws around usage errors."""
        return " ".join(result.stderr.replace("│", " ").split())

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--output", "json").stdout)

    def apply(self, example: str) -> None:
        self.ok("workflow", "apply", "-f", str(EXAMPLES / example))


@pytest.fixture(scope="session")
def make_cli() -> type[Cli]:
    """For fixtures wider than one test: ``make_cli(data_dir)``."""
    return Cli


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


@pytest.fixture
def junit_dir() -> Path:
    """JUnit reports from the Jenkins JUnit plugin's test suite."""
    return JUNIT
