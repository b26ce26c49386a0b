"""Loopback servers for the OAuth tests: uvicorn on a socket, a test CA, a CIMD document server, a callback."""

from __future__ import annotations

import socket
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from tests.serving import serving


def serve(app: ASGIApp, sock: socket.socket, **tls: str) -> AbstractAsyncContextManager[int]:
    """Serve ``app`` (lifespan included) with uvicorn on ``sock`` until the block ends."""
    return serving(app, sock, timeout_graceful_shutdown=2, **tls)


@dataclass
class TestCA:
    """A certificate authority for the tests, and a server certificate for localhost and 127.0.0.1."""

    __test__ = False
    bundle: Path
    certfile: Path
    keyfile: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_test_ca(folder: Path) -> TestCA:
    """A CA and a server certificate for ``localhost`` and ``127.0.0.1``, written to ``folder``."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("testgate test CA"))
        .issuer_name(_name("testgate test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(names, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return TestCA(ca_path, cert_path, key_path)


@dataclass
class DocumentServer:
    """An https server on localhost that publishes client metadata documents (CIMD)."""

    base: str
    documents: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def publish(self, path: str, redirect_uris: list[str], **extra: Any) -> str:
        """Serve a valid document at ``path``; returns its URL (the client id)."""
        client_id = self.url(path)
        self.documents[path] = {
            "client_id": client_id,
            "client_name": "Metadata document agent",
            "client_uri": "https://agent.example/",
            "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
            **extra,
        }
        return client_id


def document_app(server: DocumentServer) -> Starlette:
    """Serves ``server.documents``, plus a redirecting, an oversized and a too deeply nested one."""

    async def document(request: Request) -> Response:
        path = request.url.path
        if path == "/redirect.json":
            return RedirectResponse(server.url("/client.json"), status_code=302)
        if path == "/big.json":
            return Response(b"{" + b" " * (200 * 1024) + b"}", media_type="application/json")
        if path == "/deep.json":  # 4 KB nested past json.loads' depth
            return Response(b"[" * 2000 + b"]" * 2000, media_type="application/json")
        if path in server.documents:
            return JSONResponse(server.documents[path])
        return Response(status_code=404)

    return Starlette(routes=[Route("/{path:path}", document)])


@dataclass
class Callback:
    """A client's loopback redirect URI, served for real (RFC 8252 §7.3)."""

    url: str
    received: list[str] = field(default_factory=list)


def callback_app(server: Callback) -> Starlette:
    """Records each redirect it receives."""

    async def receive(request: Request) -> Response:
        server.received.append(str(request.url))
        return Response("You can close this page.", media_type="text/plain")

    return Starlette(routes=[Route("/callback", receive)])
