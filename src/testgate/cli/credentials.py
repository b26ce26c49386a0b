"""The CLI's login context: tokens kept in ``<config_dir>/credentials.json``, readable by the user only.

The file is written with mode 0600 (``os.open`` with ``O_CREAT|O_WRONLY|O_TRUNC``, then ``fchmod`` so
looser bits of an older file are tightened) inside a directory of mode 0700, through a sibling that is
renamed over it, so a crash never leaves half a file. Writers hold ``CredentialStore.locked``, an
exclusive ``flock`` on ``credentials.lock``: refresh tokens rotate (RFC 9700 §4.14.2), and two processes
refreshing with one token would make the server revoke the whole family.

    {"version": 1,
     "clients": {"<issuer>": "<client_id>"},      dynamic registrations (RFC 7591), reused per server
     "context": {...} | null}                      the current login (``Context``)
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import anyio.to_thread

from testgate.errors import Unauthenticated

FILE_MODE = 0o600
DIR_MODE = 0o700
VERSION = 1


@dataclass(frozen=True)
class Context:
    """One login: where (server, environment), as which client, and the tokens. Never printed whole."""

    server: str  # the authorization server's issuer
    resource: str  # the environment's MCP URL: the tokens' audience (RFC 8707)
    organization: str
    environment: str
    client_id: str
    token_endpoint: str
    revocation_endpoint: str | None
    access_token: str
    refresh_token: str | None
    expires_at: float  # epoch seconds
    scope: str
    lifetime: float = 0.0  # the access token's expires_in, seconds

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """The access token expires in less than ``seconds`` (or a quarter of its lifetime, if shorter)."""
        margin = min(seconds, self.lifetime / 4) if self.lifetime > 0 else seconds
        return self.expires_at - (now if now is not None else time.time()) < margin

    def with_tokens(self, answer: dict[str, Any], now: float | None = None) -> Context:
        """This context after a token response (RFC 6749 §5.1); a refresh token is kept if none is returned."""
        access, lifetime = answer.get("access_token"), answer.get("expires_in", 0)
        if not isinstance(access, str) or not isinstance(lifetime, int | float):
            raise Unauthenticated("the token response has no access token")
        refresh = answer.get("refresh_token")
        return replace(
            self,
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) else self.refresh_token,
            expires_at=(now if now is not None else time.time()) + float(lifetime),
            scope=str(answer.get("scope", self.scope)),
            lifetime=float(lifetime),
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Context:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class CredentialStore:
    """The credentials file of one configuration directory."""

    def __init__(self, config_dir: Path) -> None:
        self.folder = config_dir
        self.path = config_dir / "credentials.json"
        self.lock_path = config_dir / "credentials.lock"

    def read(self) -> dict[str, Any]:
        """The file's contents (an empty store when there is none)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": VERSION, "clients": {}, "context": None}
        except ValueError:
            raise Unauthenticated(f"{self.path} is not valid JSON; delete it and log in again") from None
        if not isinstance(data, dict):
            raise Unauthenticated(f"{self.path} is not a credentials file; delete it and log in again")
        return data

    def context(self) -> Context | None:
        """The current login, if any."""
        data = self.read().get("context")
        return Context.from_json(data) if isinstance(data, dict) else None

    def client_id(self, issuer: str) -> str | None:
        """The client this CLI registered at ``issuer`` earlier."""
        found = self.read().get("clients", {}).get(issuer)
        return found if isinstance(found, str) else None

    def save(self, context: Context | None, *, client: tuple[str, str] | None = None) -> None:
        """Replace the current login (``None``: forget it), remembering ``client`` (issuer, id) if given.

        MUST be called while holding ``locked``.
        """
        data = self.read()
        data["version"] = VERSION
        data["context"] = asdict(context) if context is not None else None
        clients = data.setdefault("clients", {})
        if client is not None:
            clients[client[0]] = client[1]
        self._write(json.dumps(data, indent=2) + "\n")

    def _ensure_folder(self) -> None:
        self.folder.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.folder, DIR_MODE)

    def _write(self, text: str) -> None:
        self._ensure_folder()
        partial = self.path.with_name(self.path.name + ".partial")
        fd = os.open(partial, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, self.path)

    def _acquire(self) -> int:
        self._ensure_folder()
        fd = os.open(self.lock_path, os.O_CREAT | os.O_WRONLY, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    @asynccontextmanager
    async def locked(self) -> AsyncIterator[None]:
        """Hold the store's exclusive lock (waited for in a worker thread, so the event loop keeps running)."""
        fd = await anyio.to_thread.run_sync(self._acquire)
        try:
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock
