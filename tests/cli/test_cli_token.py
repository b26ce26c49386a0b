"""``testgate token``: a secret shown once, never listed; revocation; expiry parsing."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from testgate.access import tokens
from testgate.access.tokens import parse_expiry

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_create_prints_the_secret_once_with_its_prefix_and_list_never_shows_it(cli) -> None:
    created = cli("token", "create", "--name", "ci", "--env", "dev:run", "--expires", "P30D", "--label", "team=qa")

    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("tgp_")
    assert tokens.well_formed(secret)
    assert "shown only once" in created.stderr
    listed = cli.ok("token", "list")
    as_json = cli.json("token", "list")
    assert secret not in listed.output
    assert secret not in json.dumps(as_json)
    (token,) = as_json["tokens"]
    assert (token["name"], token["role"], token["grants"], token["status"]) == (
        "ci",
        "member",
        {"dev": "run"},
        "active",
    )
    assert token["prefix"] == secret[:8]
    assert token["labels"] == {"team": "qa"}


def test_the_secret_is_stored_only_as_a_hash(cli) -> None:
    secret = cli.ok("token", "create", "--name", "ci", "--role", "admin", "--expires", "P1D").stdout.strip()

    stored = b"".join(p.read_bytes() for p in cli.data_dir.glob("testgate.db*"))

    assert secret.encode() not in stored
    assert tokens.digest(secret).encode() in stored


def test_a_token_without_expiry_is_created_with_a_warning(cli) -> None:
    created = cli("token", "create", "--name", "forever", "--role", "admin")

    assert created.exit_code == 0
    assert "never expires" in created.stderr
    assert cli.json("token", "list")["tokens"][0]["expires_at"] is None


def test_revoking_a_token_marks_it_revoked(cli) -> None:
    cli.ok("token", "create", "--name", "ci", "--env", "dev:read", "--expires", "2099-01-01")
    (token,) = cli.json("token", "list")["tokens"]

    revoked = cli("token", "revoke", token["id"], "--yes")

    assert revoked.exit_code == 0
    assert "is revoked" in revoked.stderr
    assert cli.json("token", "list")["tokens"][0]["status"] == "revoked"


def test_revoking_an_unknown_token_is_not_found(cli) -> None:
    result = cli("token", "revoke", "nope")

    assert result.exit_code == 1
    assert "no token 'nope'" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--env", "prod:run"], 1, "environment(s) prod not found"),
        ([], 1, "a member token needs a permission in at least one environment"),
        (["--env", "dev"], 2, "expected ENV:PERMISSION"),
        (["--env", "dev:root"], 2, "is not one of read, run, write, admin"),
        (["--role", "admin", "--env", "dev:run"], 2, "an admin token holds every environment"),
        (["--env", "dev:run", "--expires", "P1M"], 2, "use weeks, days, hours"),
        (["--env", "dev:run", "--expires", "2001-01-01"], 2, "is not in the future"),
        (["--env", "dev:run", "--expires", "P99999999D"], 2, "ends after the year 9999"),
        (["--env", "dev:run", "--expires", "PT99999999999H"], 2, "is longer than any expiry or grace period"),
    ],
)
def test_a_bad_token_request_is_refused_and_issues_nothing(cli, args, code, message) -> None:
    result = cli("token", "create", "--name", "x", *args)

    assert result.exit_code == code
    assert message in cli.said(result)
    assert cli.json("token", "list")["tokens"] == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P30D", NOW + timedelta(days=30)),
        ("PT12H", NOW + timedelta(hours=12)),
        ("P2W", NOW + timedelta(weeks=2)),
        ("P1DT6H30M", NOW + timedelta(days=1, hours=6, minutes=30)),
        ("pt90s", NOW + timedelta(seconds=90)),
        ("2027-01-01", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2027-01-01T08:00:00+02:00", datetime(2027, 1, 1, 6, tzinfo=UTC)),
    ],
)
def test_an_expiry_is_a_duration_from_now_or_a_date(text, expected) -> None:
    assert parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["P", "PT", "P1Y", "P1M", "30 days", "P0D", "2020-01-01", "P1DT"])
def test_an_expiry_that_is_not_a_future_duration_or_date_is_refused(text) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_expiry(text, NOW)
