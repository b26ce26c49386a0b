"""Node.js tools the tests drive but the repository does not vendor, installed once into ``.tools/``.

Each tool is an npm package pinned to an exact version in its own folder (``.tools/<folder>``, gitignored);
they run on Node 22 from the npm package ``node`` (the machine's Node 20 is too old for them). The first
run needs npm and the registry; later runs find everything in place and work offline. ``ensure`` is
idempotent and safe to call from concurrent test processes (a file lock per folder).

    python tests/tooling.py        # install everything ahead of a test run
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / ".tools"
INSTALL_TIMEOUT = 600.0


class ToolUnavailable(Exception):
    """npm is missing or the registry cannot be reached, so a tool could not be installed."""


@dataclass(frozen=True)
class NpmTool:
    """npm packages at exact versions in ``.tools/<folder>``; ``bin`` names the command to run."""

    folder: str
    packages: Mapping[str, str]
    bin: str

    @property
    def prefix(self) -> Path:
        return TOOLS / self.folder

    @property
    def executable(self) -> Path:
        return self.prefix / "node_modules" / ".bin" / self.bin

    def installed(self) -> bool:
        """Every package is present at its pinned version."""
        return all(_version(self.prefix, name) == version for name, version in self.packages.items())


NODE22 = NpmTool("node22", {"node": "22.23.3"}, bin="node")
CONFORMANCE = NpmTool("conformance", {"@modelcontextprotocol/conformance": "0.2.0-alpha.12"}, bin="conformance")
INSPECTOR = NpmTool("inspector", {"@modelcontextprotocol/inspector": "2.12.0"}, bin="mcp-inspector")


def _version(prefix: Path, package: str) -> str | None:
    manifest = prefix / "node_modules" / package / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure(tool: NpmTool) -> Path:
    """Install ``tool`` unless it is already in place; returns its executable."""
    if tool.installed():
        return tool.executable
    npm = shutil.which("npm")
    if npm is None:
        raise ToolUnavailable("npm is not on PATH")
    tool.prefix.mkdir(parents=True, exist_ok=True)
    with open(TOOLS / f"{tool.folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing the same folder
        if not tool.installed():
            _npm_install(npm, tool)
    return tool.executable


def _npm_install(npm: str, tool: NpmTool) -> None:
    specs = [f"{name}@{version}" for name, version in tool.packages.items()]
    command = [npm, "install", "--prefix", str(tool.prefix), "--save-exact", "--no-audit", "--no-fund", *specs]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise ToolUnavailable(f"npm install {' '.join(specs)} took over {INSTALL_TIMEOUT:g} s") from None
    if done.returncode != 0 or not tool.installed():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise ToolUnavailable(f"npm install {' '.join(specs)} failed: " + " | ".join(tail))


def node_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment whose ``node`` is Node 22 (installing it if needed), for running the tools."""
    ensure(NODE22)
    env = dict(os.environ if base is None else base)
    env["PATH"] = os.pathsep.join([str(NODE22.executable.parent), env.get("PATH", "")])
    env.setdefault("NO_COLOR", "1")
    return env


def main() -> int:
    """Install every tool (``python tests/tooling.py``)."""
    for tool in (NODE22, CONFORMANCE, INSPECTOR):
        try:
            print(f"{tool.folder}: {ensure(tool)}")
        except ToolUnavailable as exc:
            print(f"{tool.folder}: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
