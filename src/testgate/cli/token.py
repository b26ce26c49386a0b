"""``testgate token``: issue, list and revoke API tokens for the organization, as the local owner.

Token management is not an operation yet, so these functions work on a session here and write the
audit events themselves (``token.create``, ``token.revoke``); they belong behind ``dispatch`` later.
A secret is printed once, on stdout alone (for ``TOKEN=$(testgate token create …)``); only its hash is kept.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.markup import escape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from testgate.access import tokens
from testgate.access.principal import Permission, Role
from testgate.audit import recorder
from testgate.cli import output
from testgate.cli.expiry import parse_expiry
from testgate.cli.local import Local, connect, run
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Org, Target, pairs
from testgate.errors import NotFound
from testgate.platform import tenancy
from testgate.store.base import utcnow
from testgate.store.tenancy import Organization
from testgate.store.tokens import ApiTokenRow

app = typer.Typer(help="API tokens: create, list and revoke.", no_args_is_help=True)


class TokenRole(StrEnum):
    admin = "admin"
    member = "member"


class TokenInfo(BaseModel):
    """A token as listed: never its secret."""

    id: str
    name: str
    role: str
    grants: dict[str, str]
    labels: dict[str, Any]
    prefix: str
    status: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class Created(BaseModel):
    token: TokenInfo
    secret: str


def _status(row: ApiTokenRow, now: datetime) -> str:
    if row.revoked_at is not None and row.revoked_at <= now:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def _info(row: ApiTokenRow, slugs: dict[str, str]) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        name=row.name,
        role=row.role,
        grants={slugs.get(env_id, env_id): perm for env_id, perm in row.grants.items()},
        labels=row.labels,
        prefix=row.prefix,
        status=_status(row, utcnow()),
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


async def _organization(session: AsyncSession, client: Local) -> tuple[Organization, dict[str, str]]:
    """The organization and its environments' slugs by id."""
    org = await tenancy.organization_by_slug(session, client.call.organization)
    return org, {e.id: e.slug for e in await tenancy.list_environments(session, org)}


async def _audit(
    session: AsyncSession, client: Local, action: str, row: ApiTokenRow, arguments: dict[str, Any]
) -> None:
    principal = client.call.principal
    event = recorder.Event(
        organization_id=row.organization_id,
        action=action,
        outcome="allowed",
        transport="cli",
        actor_type=principal.kind,
        actor_id=principal.id,
        actor_name=principal.name,
        resources=[{"type": "api_token", "id": row.id, "name": row.name}],
        request_id=client.call.request_id,
        user_agent=client.call.user_agent,
        arguments=arguments,
    )
    await recorder.record(session, event)


def _grants(values: list[str] | None) -> dict[str, Permission]:
    """``["dev:run", "prod:read"]`` -> environment slug -> permission."""
    result: dict[str, Permission] = {}
    for item in values or []:
        slug, sep, perm = item.partition(":")
        try:
            if not sep or not slug:
                raise ValueError("expected ENV:PERMISSION, e.g. dev:run")
            result[slug] = Permission.parse(perm)
        except ValueError as exc:
            raise typer.BadParameter(f"{item!r}: {exc}", param_hint="--env") from None
    return result


async def create_token(
    target: Target,
    *,
    name: str,
    role: Role,
    grants: dict[str, Permission],
    expires_at: datetime | None,
    labels: dict[str, str],
) -> Created:
    """Issue a token in the local owner's name (``created_by`` None: bounded only by its own grants)."""
    async with connect(target) as client, client.platform.db.session() as session:
        org, slugs = await _organization(session, client)
        by_slug = {slug: env_id for env_id, slug in slugs.items()}
        missing = sorted(set(grants) - set(by_slug))
        if missing:
            raise NotFound(f"environment(s) {', '.join(missing)} not found in organization {org.slug!r}")
        issued = await tokens.issue(
            session,
            organization_id=org.id,
            name=name,
            role=role,
            grants={by_slug[s]: p for s, p in grants.items()},
            created_by=None,
            expires_at=expires_at,
            labels=labels,
        )
        info = _info(issued.row, slugs)
        await _audit(
            session,
            client,
            "token.create",
            issued.row,
            info.model_dump(mode="json", include={"name", "role", "grants", "expires_at", "labels"}),
        )
        return Created(token=info, secret=issued.secret)


async def list_tokens(target: Target) -> TokenList:
    """Every token of the organization, revoked and expired ones included."""
    async with connect(target) as client, client.platform.db.session() as session:
        org, slugs = await _organization(session, client)
        rows = await session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.organization_id == org.id).order_by(ApiTokenRow.created_at)
        )
        return TokenList(tokens=[_info(row, slugs) for row in rows])


async def revoke_token(target: Target, token_id: str) -> TokenInfo:
    """Revoke a token now (revoking it again changes nothing)."""
    async with connect(target) as client, client.platform.db.session() as session:
        org, slugs = await _organization(session, client)
        row = await session.get(ApiTokenRow, token_id)
        if row is None or row.organization_id != org.id:
            raise NotFound(f"no token {token_id!r} in organization {org.slug!r}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            await _audit(session, client, "token.revoke", row, {"id": row.id})
        return _info(row, slugs)


def _grants_text(info: TokenInfo) -> str:
    if info.role == "admin":
        return "every environment"
    return ", ".join(f"{env}:{perm}" for env, perm in info.grants.items())


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. ci.", show_default=False)],
    role: Annotated[
        TokenRole, typer.Option("--role", help="admin: every environment; member: --env grants.")
    ] = TokenRole.member,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="A grant, ENV:PERMISSION (read, run, write, admin).")
    ] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="P30D, PT12H, P2W, or a date: 2027-01-01.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="A label: key=value.")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Annotated[Format, OutputOption] = Format.table,
) -> None:
    """Create an API token and print its secret (once)."""
    try:
        expires_at = parse_expiry(expires, utcnow()) if expires else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--expires") from None
    grants = _grants(env)
    if role is TokenRole.admin and grants:
        raise typer.BadParameter(
            "an admin token holds every environment; drop --env or use --role member", param_hint="--env"
        )
    created = run(
        create_token(
            Target(data_dir, org),
            name=name,
            role=Role(role.value),
            grants=grants,
            expires_at=expires_at,
            labels=pairs(label, "--label"),
        )
    )
    if fmt is Format.json:
        return output.emit_json(created)
    info = created.token
    output.note(f"created token [bold]{escape(info.name)}[/] ({info.id}, {info.role}: {escape(_grants_text(info))})")
    if info.expires_at is None:
        output.warn("this token never expires; prefer --expires (e.g. P30D) and rotate it")
    else:
        output.note(f"expires {info.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    output.note("[bold]Copy the secret now: it is shown only once and cannot be shown again.[/]")
    output.echo(created.secret)


@app.command("list")
def list_(data_dir: DataDir = None, org: Org = None, fmt: Annotated[Format, OutputOption] = Format.table) -> None:
    """List the organization's tokens (never their secrets)."""
    found = run(list_tokens(Target(data_dir, org)))
    if fmt is Format.json:
        return output.emit_json(found)
    output.table(
        ["id", "name", "role", "grants", "prefix", "status", "expires", "last used"],
        [
            (
                t.id,
                t.name,
                t.role,
                _grants_text(t),
                t.prefix,
                output.status(t.status),
                t.expires_at,
                t.last_used_at,
            )
            for t in found.tokens
        ],
    )


@app.command()
def revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (see token list).", show_default=False)],
    data_dir: DataDir = None,
    org: Org = None,
) -> None:
    """Revoke a token: it stops working at once."""
    info = run(revoke_token(Target(data_dir, org), token_id))
    output.note(f"token [bold]{escape(info.name)}[/] ({info.id}) is {info.status}")
