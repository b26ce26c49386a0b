"""How a step is launched: whether it runs, its command line, environment and working directory.

``shell`` steps run as ``/bin/sh -e -c <script>``: with errexit a failing command fails the step, as
CI runners do. ``run`` steps exec ``command + args`` directly, without a shell.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testgate.errors import RunnerError
from testgate.platform import spec as specs
from testgate.runner.workspace import inside

SHELL = ("/bin/sh", "-e", "-c")
SERVER_PREFIX = "TESTGATE_"
GIT_VARIABLES = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}


def should_run(condition: str, failed_before: bool) -> bool:
    """``passed``: all previous steps passed; ``failed``: one of them failed; ``always``."""
    if condition == "always":
        return True
    return failed_before if condition == "failed" else not failed_before


def config_values(spec: specs.Spec, stored: Mapping[str, Any], secrets: Mapping[str, str]) -> dict[str, Any]:
    """The run's config values with the real sensitive values (the store only holds ``***``)."""
    missing = sorted(n for n, p in spec.config.items() if p.sensitive and n in stored and n not in secrets)
    if missing:
        raise RunnerError(
            f"sensitive config value(s) {', '.join(missing)} were not handed to the executor; run it again"
        )
    return {**stored, **secrets}


def _render(text: str, values: Mapping[str, Any], where: str) -> str:
    try:
        return specs.render(text, dict(values))
    except KeyError as exc:
        raise RunnerError(f"{where} uses {{{{ config.{exc.args[0]} }}}}, which has no value") from None


def command(step: specs.Step, values: Mapping[str, Any]) -> list[str]:
    """The argv of a step, templates rendered."""
    where = f"step {step.name!r}"
    if step.shell is not None:
        return [*SHELL, _render(step.shell, values, where)]
    assert step.run is not None  # the spec allows exactly one of shell and run
    return [_render(part, values, where) for part in [*step.run.command, *step.run.args]]


def server_environment() -> dict[str, str]:
    """The server's own environment without its settings (they may hold database passwords or keys)."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(SERVER_PREFIX)}


def environment(spec: specs.Spec, step: specs.Step, values: Mapping[str, Any]) -> dict[str, str]:
    """Server environment, then ``spec.env``, then ``step.env`` (later wins), templates rendered."""
    env = server_environment()
    env.update({k: _render(v, values, f"env {k}") for k, v in spec.env.items()})
    env.update({k: _render(v, values, f"step {step.name!r} env {k}") for k, v in step.env.items()})
    return env


def git_environment() -> dict[str, str]:
    """For cloning content: never wait for a password nobody can type."""
    return {**server_environment(), **GIT_VARIABLES}


def working_dir(workspace: Path, step: specs.Step, values: Mapping[str, Any]) -> Path:
    """The step's directory: inside the workspace after rendering and resolving symlinks, and existing."""
    if step.working_dir is None:
        return workspace
    relative = _render(step.working_dir, values, f"step {step.name!r} workingDir")
    path = inside(workspace, relative, what="working directory")
    if not path.is_dir():
        raise RunnerError(f"working directory {relative!r} does not exist in the workspace")
    return path
