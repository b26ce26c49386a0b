"""``testgate member``: the organization's people, through ``dispatch`` as the local owner.

A member is a user with a role in the organization (owner, admin or member) and, for members, a
permission per environment. ``invite`` creates the account when it is new: with ``--password-stdin``
it gets that password, otherwise a one-time invitation link is printed, once, on stdout alone.
A member is named by email address or user id.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from testgate.cli import output
from testgate.cli.local import call
from testgate.cli.output import Format, OutputOption
from testgate.cli.params import DataDir, Org, Target, Yes
from testgate.cli.token import env_grants
from testgate.operations.members import Invited, MemberInfo, MemberList, Removed

app = typer.Typer(help="Members: list, invite, set roles and environment permissions, remove.", no_args_is_help=True)

Output = Annotated[Format, OutputOption]
User = Annotated[str, typer.Argument(metavar="USER", help="Email address or user id.", show_default=False)]


class MemberRole(StrEnum):
    owner = "owner"
    admin = "admin"
    member = "member"


def _grants_text(member: MemberInfo) -> str:
    if member.role in ("owner", "admin"):
        return "every environment"
    return ", ".join(f"{env}:{perm}" for env, perm in member.grants.items()) or "-"


def _show(member: MemberInfo, fmt: Format, message: str) -> None:
    if fmt is Format.json:
        return output.emit_json(member)
    output.note(f"{escape(member.email)} ({member.role}: {escape(_grants_text(member))}) {message}")


@app.command("list")
def list_(
    role: Annotated[MemberRole | None, typer.Option("--role", help="Only members with this role.")] = None,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """List members with their role and environment permissions."""
    found = call(Target(data_dir, org), "member.list", {"role": role.value} if role else {}, MemberList)
    if fmt is Format.json:
        return output.emit_json(found)
    output.table(
        ["user id", "email", "name", "role", "environments", "joined", "pending"],
        [
            (
                m.user_id,
                m.email,
                m.name,
                m.role,
                _grants_text(m),
                m.joined_at,
                "invited" if m.invitation_pending else "",
            )
            for m in found.members
        ],
    )


@app.command()
def invite(
    email: Annotated[str, typer.Argument(help="The person's email address.", show_default=False)],
    name: Annotated[str, typer.Option("--name", help="Display name (default: the address's local part).")] = "",
    role: Annotated[MemberRole, typer.Option("--role", help="owner, admin or member.")] = MemberRole.member,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="A grant, ENV:PERMISSION (read, run, write, admin).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read an initial password from stdin instead of inviting.")
    ] = False,
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Add a person: a new account gets --password-stdin's password, or a one-time invitation link."""
    args: dict[str, object] = {
        "email": email,
        "name": name,
        "role": role.value,
        "environments": env_grants(env, "--env"),
    }
    if password_stdin:
        args["password"] = sys.stdin.readline().rstrip("\r\n")
    target = Target(data_dir, org)
    invited = call(target, "member.invite", args, Invited)
    if fmt is Format.json:
        return output.emit_json(invited)
    member = invited.member
    output.note(f"added {escape(member.email)} as {member.role} ({escape(_grants_text(member))})")
    if invited.existing_user and not invited.invite_url:
        output.note("they already had an account and sign in with it")
    if invited.invite_url:
        expires = f"{invited.invite_expires_at:%Y-%m-%d %H:%M} UTC" if invited.invite_expires_at else "soon"
        output.note(f"[bold]Send them this link to set a password; it works once, until {expires}:[/]")
        output.echo(invited.invite_url)
        settings = target.settings()
        if not settings.public_url:
            # The CLI cannot know where the server listens: the link assumes this configuration's host and port.
            output.note(
                f"the link assumes the server is at {escape(settings.base_url)}; if it is not, set "
                "TESTGATE_PUBLIC_URL (or TESTGATE_PORT) as the server has it and invite again"
            )


@app.command("set-role")
def set_role(
    user: User,
    role: Annotated[MemberRole, typer.Argument(help="owner, admin or member.", show_default=False)],
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Change a member's role; their API tokens follow at once."""
    member = call(Target(data_dir, org), "member.set_role", {"user": user, "role": role.value}, MemberInfo)
    _show(member, fmt, "updated")


@app.command()
def grant(
    user: User,
    grants: Annotated[
        list[str], typer.Argument(metavar="ENV:PERMISSION...", help="read, run, write, admin, or none to remove.")
    ],
    data_dir: DataDir = None,
    org: Org = None,
    fmt: Output = Format.table,
) -> None:
    """Set a member's permission in environments (ENV:none removes it); their API tokens follow at once."""
    args = {"user": user, "environments": env_grants(grants, "ENV:PERMISSION", allow_none=True)}
    _show(call(Target(data_dir, org), "member.grant", args, MemberInfo), fmt, "updated")


@app.command()
def remove(user: User, yes: Yes = False, data_dir: DataDir = None, org: Org = None) -> None:
    """Remove a member and revoke their API tokens (asks first; --yes to confirm in scripts)."""
    removed = call(Target(data_dir, org), "member.remove", {"user": user}, Removed, yes=yes)
    output.note(f"removed {escape(removed.member.email)}; revoked {removed.revoked_tokens} API token(s)")
