"""``testgate db``: migrations on the configured database."""

from __future__ import annotations

import stat

from testgate.store.migrate import head_revision


def test_current_on_a_fresh_database_says_it_is_empty(cli) -> None:
    result = cli.ok("db", "current")

    assert result.stdout.startswith("empty (no migrations applied")


def test_upgrade_migrates_to_head_and_prints_the_revision(cli) -> None:
    upgraded = cli.ok("db", "upgrade")
    current = cli.ok("db", "current")

    assert upgraded.stdout.strip() == f"{head_revision()} (head)"
    assert current.stdout.strip() == f"{head_revision()} (head)"
    assert str(cli.data_dir / "testgate.db") in upgraded.stderr


def test_upgrade_is_idempotent(cli) -> None:
    cli.ok("db", "upgrade")

    again = cli.ok("db", "upgrade")

    assert again.stdout.strip() == f"{head_revision()} (head)"


def test_a_data_directory_a_db_command_creates_is_its_owners_alone(cli) -> None:
    cli.ok("db", "upgrade")

    assert stat.S_IMODE(cli.data_dir.stat().st_mode) == 0o700  # it holds the password hashes and the audit log
    # And the database file with its write-ahead log and shared memory, whatever the umask (it was 0644).
    made = sorted(p.name for p in cli.data_dir.iterdir() if p.name.startswith("testgate.db"))
    assert "testgate.db" in made
    assert {name: stat.S_IMODE((cli.data_dir / name).stat().st_mode) for name in made} == dict.fromkeys(made, 0o600)


def test_a_revision_of_a_newer_testgate_is_named_as_such_and_upgrade_refuses_it(cli) -> None:
    # "behind head: run testgate db upgrade" was the advice, and the upgrade then refused.
    import sqlite3

    cli.data_dir.mkdir(parents=True)
    with sqlite3.connect(cli.data_dir / "testgate.db") as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        db.execute("INSERT INTO alembic_version VALUES ('zzzz9999')")

    current = cli.ok("db", "current")
    upgrade = cli("db", "upgrade")

    assert current.stdout.strip() == (
        f"zzzz9999 (unknown to this version, whose head is {head_revision()}: a newer testgate migrated it)"
    )
    assert upgrade.exit_code == 1
    assert "which this version of testgate does not know" in upgrade.stderr
