"""The official MCP conformance suite's authorization-server scenarios, against a live testgate.

``npx @modelcontextprotocol/conformance@0.2.0-alpha.12 authorization`` runs
``authorization-server-metadata-endpoint`` and ``authorization-code-grant``; the latter prints an
authorization URL and waits for a person, whose part headless Chromium plays. The suite needs Node 22,
which the npm package ``node@22`` carries: both are installed once into ``.tools/node22`` (gitignored).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from tests.conftest import service_unavailable
from tests.serving import free_port

VERSION = "0.2.0-alpha.12"
ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "node22"
BIN = TOOLS / "node_modules" / ".bin"
# authorization-server-metadata-endpoint yields the first two; authorization-code-grant the third.
CHECKS = {"authorization-server-metadata", "authorization-server-metadata-cimd", "authorization-code-grant"}

pytestmark = pytest.mark.slow


def _installed() -> bool:
    manifest = TOOLS / "node_modules" / "@modelcontextprotocol" / "conformance" / "package.json"
    if not (BIN / "conformance").exists() or not (BIN / "node").exists() or not manifest.exists():
        return False
    return bool(json.loads(manifest.read_text())["version"] == VERSION)


@pytest.fixture(scope="session")
def conformance() -> Path:
    """The suite's executable, installed from the npm registry on first use (npm is treated as a service)."""
    if _installed():
        return BIN / "conformance"
    npm = shutil.which("npm")
    if npm is None:
        service_unavailable("npm", "npm is not installed")
    TOOLS.mkdir(parents=True, exist_ok=True)
    packages = ["node@22", f"@modelcontextprotocol/conformance@{VERSION}"]
    try:
        subprocess.run(
            [str(npm), "install", "--no-audit", "--no-fund", "--prefix", str(TOOLS), *packages],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        service_unavailable("the npm registry", str(exc))
    assert _installed(), "npm install did not produce the conformance suite"
    return BIN / "conformance"


async def _drive(process: asyncio.subprocess.Process, base: str, person: Any, lines: list[str]) -> None:
    """Read the suite's output; when it prints the authorization URL, sign in and allow in the browser."""
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if line.startswith(f"{base}/oauth/authorize?"):
            landed = await person.authorize(line)
            assert "/callback?" in landed, landed


def _checks(folder: Path) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for path in sorted(folder.rglob("checks.json")):
        checks += json.loads(path.read_text())
    return checks


async def test_the_conformance_suite_passes_the_authorization_server_scenarios(
    conformance: Path, live_server: Any, person: Any, tmp_path: Path
) -> None:
    async with live_server() as live:
        await live.add_user()
        port = free_port()
        redirect = f"http://127.0.0.1:{port}/callback"
        async with httpx.AsyncClient(base_url=live.base) as http:
            body = {"redirect_uris": [redirect], "token_endpoint_auth_method": "none", "client_name": "conformance"}
            client_id = (await http.post("/oauth/register", json=body)).json()["client_id"]
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
        command = [str(conformance), "authorization", "--url", live.base, "--client-id", client_id]
        command += ["--resource", live.url(), "--port", str(port), "--output-dir", str(tmp_path / "results")]
        process = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        lines: list[str] = []
        try:
            with anyio.fail_after(120):
                await _drive(process, live.base, person, lines)
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    output = "\n".join(lines)
    checks = _checks(tmp_path / "results")
    statuses = {check["id"]: check["status"] for check in checks}
    assert set(statuses) >= CHECKS, output
    assert all(status == "SUCCESS" for status in statuses.values()), output
    assert process.returncode == 0, output
