"""``testgate environment``: list, create and rename environments as the local owner."""

from __future__ import annotations


def test_create_then_list_rename_and_use_the_new_environment(cli) -> None:
    created = cli("environment", "create", "staging", "--name", "Staging")

    assert created.exit_code == 0, created.output
    assert "staging (Staging) created" in cli.said(created)
    assert "/organizations/default/environments/staging/mcp" in cli.said(created)
    cli.ok("environment", "rename", "staging", "Pre-production")
    listed = cli.json("environment", "list")["environments"]
    assert [(e["slug"], e["name"], e["permission"]) for e in listed] == [
        ("dev", "dev", "admin"),
        ("staging", "Pre-production", "admin"),
    ]
    cli.ok("workflow", "apply", "-f", "examples/smoke.yaml", "--env", "staging")
    assert [w["name"] for w in cli.json("workflow", "list", "--env", "staging")["workflows"]] == ["smoke"]
    assert cli.json("workflow", "list", "--env", "dev")["workflows"] == []


def test_refusals_exit_1_with_the_reason_and_change_nothing(cli) -> None:
    cli.ok("environment", "create", "staging")

    again = cli("environment", "create", "staging", "--name", "Other")
    bad = cli("environment", "create", "Not_A_Slug")
    blank = cli("environment", "rename", "staging", "   ")
    missing = cli("environment", "rename", "nowhere", "X")

    assert again.exit_code == 1
    assert "environment 'staging' already exists" in cli.said(again)
    assert bad.exit_code == 1
    assert "slug: must be a slug" in cli.said(bad)
    assert blank.exit_code == 1
    assert "name: a name needs at least one character" in cli.said(blank)
    assert missing.exit_code == 1
    assert "environment 'nowhere' not found" in cli.said(missing)
    for result in (again, bad, blank, missing):
        assert "Traceback" not in result.output
    names = {e["slug"]: e["name"] for e in cli.json("environment", "list")["environments"]}
    assert names == {"dev": "dev", "staging": "staging"}
