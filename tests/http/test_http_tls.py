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


def test_a_certificate_that_cannot_be_loaded_stops_serve_with_the_setting_named(
    certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    # Given by the environment (the flags are checked by the CLI), these were uvicorn tracebacks with no path.
    from testgate.cli.serve import _tls_problem
    from testgate.config import Settings
    from testgate.http.settings import HttpSettings

    cert, key = certificate

    def problem(**http: Any) -> tuple[str, str] | None:
        return _tls_problem(Settings(data_dir=tmp_path, http=HttpSettings(**http)))

    assert problem(tls_cert=cert, tls_key=key) is None
    assert problem(tls_cert=tmp_path / "gone.pem", tls_key=key) == (
        "TESTGATE_HTTP__TLS_CERT",
        f"{tmp_path / 'gone.pem'} is not a file",
    )
    swapped = problem(tls_cert=key, tls_key=cert)
    assert swapped is not None
    assert swapped[0] == "TESTGATE_HTTP__TLS_CERT"
    assert "do not load as a PEM certificate and its key" in swapped[1]
