"""``testgate token``: create, list, revoke and rotate API tokens, through ``dispatch`` as the local owner.

A secret is printed once, on stdout alone (for ``TOKEN=$(testgate token create …)``); only its hash is
kept. Expiry is an ISO 8601 duration (P30D, PT12H, P2W, P1DT6H) or a date; months and years are refused.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from testgate.access import tokens
from testgate.access.principal import Permission
from testgate.cli import output
from testgate.cli.local import call
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Org, Target, Yes, pairs
from testgate.operations.access import TokenInfo, TokenList, TokenSecret
from testgate.store.base import utcnow

app = typer.Typer(help="API tokens: create, list, revoke and rotate.", no_args_is_help=True)

Output = Annotated[Format, OutputOption]
TokenId = Annotated[str, typer.Argument(metavar="ID", help="The token's id (see token list).", show_default=False)]


class TokenRole(StrEnum):
    admin = "admin"
    member = "member"


def env_grants(values: list[str] | None, option: str, *, allow_none: bool = False) -> dict[str, str]:
    """``["dev:run", "prod:read"]`` -> environment slug -> permission; a usage error names the bad one."""
    result: dict[str, str] = {}
    for item in values or []:
        slug, sep, perm = item.partition(":")
        try:
            if not sep or not slug:
                raise ValueError("expected ENV:PERMISSION, e.g. dev:run")
            none = allow_none and perm.strip().lower() == "none"
            result[slug] = "none" if none else Permission.parse(perm).label
        except ValueError as exc:
            raise typer.BadParameter(f"{item!r}: {exc}", param_hint=option) from None
    return result


def _grants_text(info: TokenInfo) -> str:
    if info.role == "admin":
        return "every environment"
    return ", ".join(f"{env}:{perm}" for env, perm in info.grants.items())


def _show_secret(result: TokenSecret, verb: str, fmt: Format) -> None:
    if fmt is Format.json:
        return output.emit_json(result)
    info = result.token
    output.note(f"{verb} token [bold]{escape(info.name)}[/] ({info.id}, {info.role}: {escape(_grants_text(info))})")
    for warning in result.warnings:
        output.warn(warning)
    if info.expires_at is not None:
        output.note(f"expires {info.expires_at:%Y-%m-%d %H:%M:%S} UTC")
    output.note("[bold]Copy the secret now: it is shown only once and cannot be shown again.[/]")
    output.echo(result.secret)


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
    fmt: Output = Format.table,
) -> None:
    """Create an API token and print its secret (once)."""
    if expires is not None:
        try:
            tokens.parse_expiry(expires, utcnow())
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--expires") from None
    grants = env_grants(env, "--env")
    if role is TokenRole.admin and grants:
        raise typer.BadParameter(
            "an admin token holds every environment; drop --env or use --role member", param_hint="--env"
        )
    args = {"name": name, "role": role.value, "environments": grants, "labels": pairs(label, "--label")}
    created = call(Target(data_dir, org), "token.create", args | ({"expires": expires} if expires else {}), TokenSecret)
    _show_secret(created, "created", fmt)


@app.command("list")
def list_(data_dir: DataDir = None, org: Org = None, fmt: Output = Format.table) -> None:
    """List the organization's tokens (never their secrets)."""
    found = call(Target(data_dir, org), "token.list", {}, TokenList)
    if fmt is Format.json:
        return output.emit_json(found)
    output.table(
        ["id", "name", "role", "grants", "prefix", "status", "expires", "last used", "from", "creator"],
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
                t.last_used_from,
                t.creator,
            )
            for t in found.tokens
        ],
    )


@app.command()
def revoke(token_id: TokenId, yes: Yes = False, data_dir: DataDir = None, org: Org = None) -> None:
    """Revoke a token: it stops working at once (asks first; --yes to confirm in scripts)."""
    info = call(Target(data_dir, org), "token.revoke", {"id": token_id}, TokenInfo, yes=yes)
    output.note(f"token [bold]{escape(info.name)}[/] ({info.id}) is {info.status}")


@app.command()
def rotate(
    token_id: TokenId,
    grace: Annotated[
        str | None, typer.Option("--grace", help="How long the old secret keeps working: PT1H, P1D (at most P7D).")
    ] = None,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Give a token a new secret and print it (once); the old one stops now, or after --grace."""
    if grace is not None:
        try:
            tokens.parse_grace(grace)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--grace") from None
    args = {"id": token_id} | ({"grace": grace} if grace else {})
    _show_secret(call(Target(data_dir, org), "token.rotate", args, TokenSecret), "rotated", fmt)
