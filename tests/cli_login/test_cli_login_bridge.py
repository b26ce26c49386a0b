"""``testgate mcp serve`` bridging stdio to a live server: the SDK's stdio client spawns the real command."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitResult
from sqlalchemy import select
from tests.cli_login.conftest import Cli
from tests.cli_login.forward_proxy import ForwardProxy
from tests.oauth.conftest import Live, LiveFactory
from tests.oauth.oauth_person import Person
from tests.oauth.oauth_servers import TestCA

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.cli import login
from testgate.cli.credentials import Context, CredentialStore
from testgate.config import Settings
from testgate.oauth.settings import OAuthSettings
from testgate.platform import tenancy
from testgate.store.audit import AuditEventRow

pytestmark = pytest.mark.slow

FLOW = "kind: TestWorkflow\nmetadata: {name: smoke}\nspec:\n  steps:\n    - name: test\n      shell: echo ok\n"
MODERN = "2026-07-28"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@asynccontextmanager
async def bridged(cli: Cli, *, mode: str = "legacy", elicitation: Any = None, **env: str) -> AsyncIterator[Client]:
    """The SDK's stdio client on ``testgate mcp serve``, with this test's configuration directory."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "testgate", "mcp", "serve"], env=cli.env(**env))
    with (cli.home / "bridge.log").open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=mode, elicitation_callback=elicitation) as client:
            yield client


def bridge_log(cli: Cli) -> str:
    return (cli.home / "bridge.log").read_text()


async def logged_in(cli: Cli, live: Live, person: Person, monkeypatch: pytest.MonkeyPatch) -> Context:
    """``testgate login`` in this process; the browser it would open is the person's headless Chromium."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    opened: list[asyncio.Task[str]] = []
    monkeypatch.setattr(
        login.webbrowser, "open", lambda url: opened.append(asyncio.ensure_future(person.authorize(url)))
    )
    settings = Settings(config_dir=cli.config_dir, data_dir=cli.home / "data")
    context = await login.login_flow(settings, live.base, timeout=60)
    assert "/callback?code=" in await opened[0]
    return context


def stored(cli: Cli) -> Context:
    context = CredentialStore(cli.config_dir).context()
    assert context is not None
    return context


def rewrite(cli: Cli, **changes: Any) -> None:
    """Change the stored login as time (or another process) would have."""
    data = json.loads(cli.credentials.read_text())
    data["context"] = dataclasses.asdict(dataclasses.replace(stored(cli), **changes))
    cli.credentials.write_text(json.dumps(data))


async def events(live: Live, *actions: str) -> list[AuditEventRow]:
    async with live.platform.db.session() as session:
        query = select(AuditEventRow).where(AuditEventRow.action.in_(actions)).order_by(AuditEventRow.seq)
        return list(await session.scalars(query))


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_the_bridge_lists_and_calls_tools_as_the_logged_in_person(
    mode: str, cli: Cli, live_server: LiveFactory, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_server() as live:
        ada = await live.add_user(grants={"dev": Permission.WRITE})
        await logged_in(cli, live, person, monkeypatch)
        async with bridged(cli, mode=mode) as client:
            listing = await client.list_tools()
            created = await client.call_tool("create_workflow", {"definition": FLOW})
            listed = await client.call_tool("list_workflows", {})
        calls = await events(live, "workflow.create", "workflow.list")
    assert {"list_workflows", "run_workflow", "delete_workflow"} <= {tool.name for tool in listing.tools}
    assert not created.is_error, created
    assert listed.structured_content is not None
    assert listed.structured_content["count"] == 1
    # Enforced and audited on the server, as the person, through the hosted endpoint.
    assert [(e.action, e.actor_type, e.actor_name, e.transport) for e in calls] == [
        ("workflow.create", "oauth", ada.email, "mcp-http"),
        ("workflow.list", "oauth", ada.email, "mcp-http"),
    ]
    assert "bridging stdio to the hosted MCP endpoint" in bridge_log(cli)


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_a_destructive_tool_is_confirmed_by_the_local_client_through_the_bridge(
    mode: str, cli: Cli, live_server: LiveFactory, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    async def accept(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with live_server() as live:
        await live.add_user(grants={"dev": Permission.WRITE})
        await logged_in(cli, live, person, monkeypatch)
        async with bridged(cli, mode=mode, elicitation=accept) as client:
            await client.call_tool("create_workflow", {"definition": FLOW})
            deleted = await client.call_tool("delete_workflow", {"name": "smoke"})
            listed = await client.call_tool("list_workflows", {})
    assert deleted.structured_content is not None
    assert deleted.structured_content["deleted"] is True
    assert listed.structured_content is not None
    assert listed.structured_content["count"] == 0
    assert len(asked) == 1
    assert "smoke" in asked[0]


async def test_an_access_token_about_to_expire_is_refreshed_before_it_is_used(
    cli: Cli, live_server: LiveFactory, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_server(oauth=OAuthSettings(access_token_ttl=60)) as live:
        await live.add_user()
        first = await logged_in(cli, live, person, monkeypatch)
        assert first.lifetime == 60
        rewrite(cli, expires_at=first.expires_at - 55)  # 5 seconds left: less than a quarter of its lifetime
        async with bridged(cli) as client:
            listed = await client.call_tool("list_workflows", {})
        issued = await events(live, "oauth.token_issued")
    after = stored(cli)
    assert not listed.is_error
    # RFC 9700 §4.14.2: the refresh rotated the refresh token, and the new pair was stored for next time.
    assert after.refresh_token != first.refresh_token
    assert after.access_token != first.access_token
    assert after.expires_at > first.expires_at - 55
    assert len(issued) == 2
    assert "access token refreshed" in bridge_log(cli)


async def test_a_refused_access_token_is_refreshed_once_and_the_request_retried(
    cli: Cli, live_server: LiveFactory, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_server() as live:
        await live.add_user()
        first = await logged_in(cli, live, person, monkeypatch)
        # The stored access token is still "valid" locally, but the server no longer accepts it (RFC 6750 §3.1).
        rewrite(cli, access_token=first.access_token[:-4] + "AAAA")
        async with bridged(cli) as client:
            listed = await client.call_tool("list_workflows", {})
    assert not listed.is_error
    assert stored(cli).refresh_token != first.refresh_token
    assert bridge_log(cli).count("access token refreshed") == 1


async def test_an_api_token_bridges_without_a_login_for_containers_and_ci(cli: Cli, live_server: LiveFactory) -> None:
    async with live_server() as live:
        secret = await api_token(live)
        async with bridged(
            cli, TESTGATE_TOKEN=secret, TESTGATE_URL=live.base, TESTGATE_DEFAULT_ORGANIZATION="acme"
        ) as client:
            listed = await client.call_tool("list_workflows", {})
        calls = await events(live, "workflow.list")
    assert not listed.is_error
    assert [e.actor_type for e in calls] == ["api_token"]
    assert not cli.credentials.exists()
    assert secret not in bridge_log(cli)


def _request(number: int, method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": number, "method": method, "params": params}).encode() + b"\n"


INITIALIZE = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "pipe", "version": "1"}}
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}


@pytest.mark.parametrize("mode", ["legacy", MODERN])
async def test_a_client_that_closes_stdin_after_asking_gets_its_answer_and_the_bridge_exits(
    mode: str, cli: Cli, live_server: LiveFactory
) -> None:
    # A one-shot client (a script piping requests in) writes its requests and closes its input at once. The
    # bridge must still deliver the answers to what it forwarded, then exit 0, as `mcp serve` does locally.
    async with live_server() as live:
        secret = await api_token(live)
        env = cli.env(TESTGATE_TOKEN=secret, TESTGATE_URL=live.base, TESTGATE_DEFAULT_ORGANIZATION="acme")
        pipe = asyncio.subprocess.PIPE
        with (cli.home / "bridge.log").open("a") as errlog:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "testgate", "mcp", "serve", env=env, stdin=pipe, stdout=pipe, stderr=errlog
            )
        assert proc.stdin is not None
        assert proc.stdout is not None
        try:
            with anyio.fail_after(60):
                if mode == "legacy":
                    proc.stdin.write(_request(1, "initialize", INITIALIZE))
                    opened = json.loads(await proc.stdout.readline())
                    assert (opened["id"], opened["result"]["protocolVersion"]) == (1, "2025-11-25"), opened
                    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
                    proc.stdin.write(json.dumps(initialized).encode() + b"\n")
                    proc.stdin.write(_request(2, "tools/call", {"name": "list_workflows", "arguments": {}}))
                else:
                    call = {"name": "list_workflows", "arguments": {}, "_meta": ENVELOPE}
                    proc.stdin.write(_request(2, "tools/call", call))
                await proc.stdin.drain()
                proc.stdin.close()
                rest = await proc.stdout.read()  # to EOF: the bridge ended
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    answers = [json.loads(line) for line in rest.splitlines()]
    assert [answer.get("id") for answer in answers] == [2], answers
    assert answers[0]["result"]["isError"] is False
    assert answers[0]["result"]["structuredContent"]["count"] == 0
    assert code == 0


async def test_a_refused_api_token_is_final_and_said_on_stderr(cli: Cli, live_server: LiveFactory) -> None:
    async with live_server() as live:
        bad = tokens.generate()  # well formed, never issued
        with pytest.raises(ExceptionGroup) as refused:
            async with bridged(cli, TESTGATE_TOKEN=bad, TESTGATE_URL=live.url()) as client:
                await client.list_tools()
    # The client's initialize fails: after a 401 there is nothing to retry with, and the client is told why
    # (an agent reads only this), not just that the server answered with an error.
    assert refused.group_contains(MCPError, match=r"the server refused the credentials \(HTTP 401: .+\); run")
    log = bridge_log(cli)
    assert log.count("the server refused TESTGATE_TOKEN (HTTP 401)") == 1
    assert bad not in log


async def test_the_bridge_goes_through_the_http_proxy_unless_no_proxy_exempts_the_server(
    cli: Cli, live_server: LiveFactory, person: Person, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with live_server() as live, ForwardProxy() as proxy:
        await live.add_user()
        first = await logged_in(cli, live, person, monkeypatch)
        rewrite(cli, expires_at=first.expires_at - 890)  # so the refresh goes through the proxy as well
        async with bridged(cli, HTTP_PROXY=proxy.url) as client:
            proxied = await client.call_tool("list_workflows", {})
        through = list(proxy.seen)
        async with bridged(cli, HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1") as client:
            direct = await client.call_tool("list_workflows", {})
    assert not proxied.is_error
    assert not direct.is_error
    assert ("POST", f"{live.base}/oauth/token") in through
    assert ("POST", live.url()) in through
    assert proxy.seen == through  # nothing more once NO_PROXY named the server


async def test_the_bridge_trusts_the_ca_bundle_it_is_given_and_nothing_less(
    cli: Cli, tls_server: LiveFactory, test_ca: TestCA
) -> None:
    async with tls_server() as live:
        secret = await api_token(live)
        with pytest.raises(ExceptionGroup) as untrusted:  # the test CA is not in the system trust store
            async with bridged(cli, TESTGATE_TOKEN=secret, TESTGATE_URL=live.url()) as client:
                await client.list_tools()
        async with bridged(
            cli, TESTGATE_TOKEN=secret, TESTGATE_URL=live.url(), TESTGATE_CA_BUNDLE=str(test_ca.bundle)
        ) as client:
            listed = await client.call_tool("list_workflows", {})
    assert live.base.startswith("https://localhost:")
    assert not listed.is_error
    # The client was told why, in the answer to its request.
    assert untrusted.group_contains(MCPError, match="could not be reached .*CERTIFICATE_VERIFY_FAILED")


async def api_token(live: Live) -> str:
    async with live.platform.db.session() as session:
        org = await tenancy.organization_by_slug(session, "acme")
        issued = await tokens.issue(
            session, organization_id=org.id, name="ci", role=Role.ADMIN, grants={}, created_by=None, expires_at=None
        )
    return issued.secret


async def test_a_server_that_cannot_be_reached_is_named_with_its_port() -> None:
    # "http://127.0.0.1 could not be reached": the port that was wrong was left out.
    import httpx2

    from testgate.mcp.bridge import ClientFacingErrors

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport = ClientFacingErrors(httpx2.AsyncHTTPTransport())
    answer = await transport.handle_async_request(httpx2.Request("POST", f"http://127.0.0.1:{port}/mcp"))
    await answer.aread()

    assert answer.status_code == 502
    assert f"testgate bridge: http://127.0.0.1:{port} could not be reached" in answer.text


def test_login_refuses_a_url_that_is_not_http() -> None:
    from typer.testing import CliRunner

    from testgate.cli.main import app

    for url in ("notaurl", "ftp://tg.example.com"):
        done = CliRunner().invoke(app, ["login", url])
        assert done.exit_code == 2, done.output
        assert "must be the server's http(s):// URL" in " ".join(done.output.split())
