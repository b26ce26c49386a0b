"""audit appends take a lock of their own (PostgreSQL)

Revision ID: e5a9c3d17b42
Revises: c4e8f19a2b07
Create Date: 2026-12-07 21:40:00.000000

``testgate_audit_append`` locked the organizations' rows ``FOR UPDATE``, a lock that conflicts with the
``FOR KEY SHARE`` lock PostgreSQL takes on a referenced row for every insert with a foreign key to it.
Two transactions in one organization that each inserted such a row (two tokens created at once, say)
and then appended their audit events deadlocked: each waited for the other's key-share lock, PostgreSQL
aborted one, and that call failed. The chain is now guarded by a transaction-level advisory lock per
organization (``testgate_audit_lock``), which nothing but appends and retention purges take.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from alembic import op

revision: str = "e5a9c3d17b42"
down_revision: str | None = "c4e8f19a2b07"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _load(name: str) -> ModuleType:
    """A sibling revision's module (Alembic loads revisions by path, not as a package's modules)."""
    spec = importlib.util.spec_from_file_location(f"testgate_revision_{name}", Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise ImportError(f"revision {name} not found beside {__file__}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_previous = _load("b7d3a41c9e20_audit_append_function")
ROW_LOCK = "PERFORM 1 FROM organizations o WHERE o.id = ANY(orgs) ORDER BY o.id FOR UPDATE;"

# Held until the transaction ends; taken in one order, so batches of several organizations cannot deadlock.
# The first key is testgate's namespace among advisory locks ('tgau'), the second the organization's.
LOCK = """
CREATE OR REPLACE FUNCTION testgate_audit_lock(orgs text[]) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k integer;
BEGIN
    FOR k IN SELECT DISTINCT hashtext(o) FROM unnest(orgs) o ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1952932213, k);
    END LOOP;
END
$$
"""
APPEND = _previous.APPEND.replace(ROW_LOCK, "PERFORM testgate_audit_lock(orgs);")
if APPEND == _previous.APPEND:
    raise ImportError("revision b7d3a41c9e20's append function no longer takes the row lock this one replaces")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LOCK)
        op.execute(APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous.APPEND)
        op.execute("DROP FUNCTION IF EXISTS testgate_audit_lock(text[])")
