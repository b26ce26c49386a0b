"""``testgate token rotate`` and friends, through dispatch as the local owner."""

from __future__ import annotations

import sqlite3

from testgate.access import tokens


def test_rotate_prints_a_new_secret_once_and_the_listing_shows_the_grace(cli) -> None:
    old = cli.ok("token", "create", "--name", "ci", "--role", "admin", "--expires", "P30D").stdout.strip()
    (token,) = cli.json("token", "list")["tokens"]

    rotated = cli("token", "rotate", token["id"], "--grace", "PT1H")

    assert rotated.exit_code == 0, rotated.output
    secret = rotated.stdout.strip()
    assert tokens.well_formed(secret)
    assert secret != old
    assert "shown only once" in rotated.stderr
    assert "previous secret works until" in cli.said(rotated)
    (listed,) = cli.json("token", "list")["tokens"]
    assert listed["prefix"] == secret[:8]
    assert listed["previous_valid_until"] is not None
    assert listed["creator"].startswith("local")


def test_rotate_without_grace_voids_the_old_secret(cli) -> None:
    cli.ok("token", "create", "--name", "ci", "--env", "dev:read", "--expires", "P1D")
    (token,) = cli.json("token", "list")["tokens"]

    rotated = cli("token", "rotate", token["id"], "--output", "json")

    assert rotated.exit_code == 0, rotated.output
    assert "the previous secret is void" in rotated.stdout
    assert cli.json("token", "list")["tokens"][0]["previous_valid_until"] is None


def test_a_grace_over_seven_days_is_a_usage_error(cli) -> None:
    cli.ok("token", "create", "--name", "ci", "--role", "admin", "--expires", "P1D")
    (token,) = cli.json("token", "list")["tokens"]

    result = cli("token", "rotate", token["id"], "--grace", "P8D")

    assert result.exit_code == 2
    assert "seven days" in cli.said(result)


def test_revoke_asks_first_and_refuses_without_a_terminal(cli) -> None:
    cli.ok("token", "create", "--name", "ci", "--role", "admin", "--expires", "P1D")
    (token,) = cli.json("token", "list")["tokens"]

    refused = cli("token", "revoke", token["id"])

    assert refused.exit_code == 1
    assert "--yes" in cli.said(refused)
    assert cli.json("token", "list")["tokens"][0]["status"] == "active"


def test_token_commands_are_audited_as_the_local_owner_over_the_cli(cli) -> None:
    cli.ok("token", "create", "--name", "ci", "--role", "admin", "--expires", "P1D")
    (token,) = cli.json("token", "list")["tokens"]
    cli.ok("token", "revoke", token["id"], "--yes")

    with sqlite3.connect(cli.data_dir / "testgate.db") as db:
        events = db.execute(
            "SELECT action, transport, actor_type, outcome FROM audit_events WHERE action LIKE 'token.%' ORDER BY seq"
        ).fetchall()

    assert events == [
        ("token.create", "cli", "local", "allowed"),
        ("token.list", "cli", "local", "allowed"),
        ("token.revoke", "cli", "local", "allowed"),
    ]
