"""``testgate serve --tls-cert --tls-key`` serves HTTPS for real (the process boundary is the subject)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest


@pytest.mark.slow
def test_serve_with_a_certificate_answers_https_that_verifies_against_it(
    spawn: Any, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    trust = ssl.create_default_context(cafile=str(cert))
    env = {"TESTGATE_DATA_DIR": str(tmp_path / "data"), "TESTGATE_DEFAULT_ORGANIZATION": "acme"}

    server = spawn(env, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https", verify=trust)
    with httpx.Client(verify=trust, timeout=5) as client:
        secure = client.get(f"{server.base}/readyz")
        metadata = client.get(f"{server.base}/.well-known/oauth-authorization-server")
    with httpx.Client(timeout=5) as plain, pytest.raises(httpx.TransportError):
        plain.get(server.base.replace("https://", "http://") + "/healthz")
    with httpx.Client(timeout=5) as untrusting, pytest.raises(httpx.ConnectError):
        untrusting.get(f"{server.base}/healthz")  # the system trust store does not know this certificate

    assert secure.status_code == 200
    assert metadata.json()["issuer"].startswith("https://127.0.0.1:")
    banner = server.log.read_text()
    assert f"{server.base}/organizations/acme/environments/dev/mcp" in banner
