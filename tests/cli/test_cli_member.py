"""``testgate member``: invite, list, set roles and grants, remove, as the local owner."""

from __future__ import annotations

PASSWORD = "correct horse battery staple"


def test_invite_prints_a_one_time_link_on_stdout_alone(cli) -> None:
    result = cli("member", "invite", "nia@acme.test", "--env", "dev:run")

    assert result.exit_code == 0, result.output
    link = result.stdout.strip()
    assert link.startswith("http")
    assert "/invite?token=" in link
    assert "works once" in cli.said(result)
    assert f"the link assumes the server is at {link.partition('/invite')[0]}" in cli.said(result)
    assert "set TESTGATE_PUBLIC_URL" in cli.said(result)
    (member,) = cli.json("member", "list")["members"]
    assert (member["email"], member["role"], member["grants"], member["invitation_pending"]) == (
        "nia@acme.test",
        "member",
        {"dev": "run"},
        True,
    )


def test_invite_with_a_password_from_stdin_prints_no_link(cli) -> None:
    result = cli("member", "invite", "nia@acme.test", "--role", "owner", "--password-stdin", input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert cli.json("member", "list", "--role", "owner")["members"][0]["invitation_pending"] is False


def test_set_role_and_grant_change_a_member(cli) -> None:
    cli.ok("member", "invite", "nia@acme.test")

    cli.ok("member", "grant", "nia@acme.test", "dev:write")
    granted = cli.json("member", "list")["members"][0]
    cli.ok("member", "grant", "nia@acme.test", "dev:none")
    promoted = cli.json("member", "set-role", "nia@acme.test", "admin")

    assert granted["grants"] == {"dev": "write"}
    assert (promoted["role"], promoted["grants"]) == ("admin", {})


def test_a_bad_grant_is_a_usage_error(cli) -> None:
    cli.ok("member", "invite", "nia@acme.test")

    result = cli("member", "grant", "nia@acme.test", "dev:root")

    assert result.exit_code == 2
    assert "is not one of read, run, write, admin" in cli.said(result)


def test_remove_needs_a_yes_and_then_removes_the_member(cli) -> None:
    cli.ok("member", "invite", "nia@acme.test")

    refused = cli("member", "remove", "nia@acme.test")
    removed = cli("member", "remove", "nia@acme.test", "--yes")

    assert refused.exit_code == 1
    assert removed.exit_code == 0, removed.output
    assert "revoked 0 API token(s)" in cli.said(removed)
    assert cli.json("member", "list")["members"] == []


def test_the_last_owner_cannot_be_demoted(cli) -> None:
    cli.ok("member", "invite", "olive@acme.test", "--role", "owner")

    result = cli("member", "set-role", "olive@acme.test", "member")

    assert result.exit_code == 1
    assert "last owner" in cli.said(result)
