"""audit append function (PostgreSQL)

Revision ID: b7d3a41c9e20
Revises: 020cbedf4b69
Create Date: 2026-12-06 21:00:00.000000

On PostgreSQL an audit append is one statement: ``testgate_audit_append`` locks the events'
organizations, reads each chain's head, hashes and inserts (``testgate.audit.postgresql``). A VOLATILE
PL/pgSQL function takes a new snapshot for each statement it runs, so the head it reads after the lock
is the last committed one. SQLite needs no function: its write transaction excludes every other writer.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "b7d3a41c9e20"
down_revision: str | None = "020cbedf4b69"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One array per column of audit_events, in the table's order, but the id and what the function decides
# (seq, prev_hash, hash). Each event's hash is the SHA-256 of its canonical encoding, which Python hands
# over in three pieces around the two values only known here: before_prev || prev_hash || before_seq ||
# seq || after_seq.
APPEND = """
CREATE OR REPLACE FUNCTION testgate_audit_append(
    event_ids text[], times timestamptz[], orgs text[], environment_ids text[], actor_types text[],
    actor_ids text[], actor_names text[], transports text[], actions text[], resources text[],
    outcomes text[], reasons text[], confirmations text[], request_ids text[], source_addresses text[],
    user_agents text[], arguments text[], before_prev text[], before_seq text[], after_seq text[]
) RETURNS TABLE (appended_seq bigint, appended_prev text, appended_hash text)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    i integer;
    last_seq bigint;
    last_hash text;
BEGIN
    -- One appender per organization at a time; rows locked in one order, so batches cannot deadlock.
    PERFORM 1 FROM organizations o WHERE o.id = ANY(orgs) ORDER BY o.id FOR UPDATE;
    FOR i IN 1 .. coalesce(array_length(orgs, 1), 0) LOOP
        SELECT e.seq, e.hash INTO last_seq, last_hash FROM audit_events e
            WHERE e.organization_id = orgs[i] ORDER BY e.seq DESC LIMIT 1;
        IF NOT FOUND THEN
            -- After a retention purge the chain continues from the checkpoint it left.
            SELECT c.seq, c.hash INTO last_seq, last_hash FROM audit_checkpoints c
                WHERE c.organization_id = orgs[i] ORDER BY c.seq DESC LIMIT 1;
            IF NOT FOUND THEN
                last_seq := 0;
                last_hash := repeat('0', 64);
            END IF;
        END IF;
        appended_seq := last_seq + 1;
        appended_prev := last_hash;
        appended_hash := encode(sha256(convert_to(
            before_prev[i] || last_hash || before_seq[i] || appended_seq::text || after_seq[i], 'UTF8')), 'hex');
        INSERT INTO audit_events (seq, event_id, time, organization_id, environment_id, actor_type, actor_id,
            actor_name, transport, action, resources, outcome, reason, confirmation, request_id, source_address,
            user_agent, arguments, prev_hash, hash)
        VALUES (appended_seq, event_ids[i], times[i], orgs[i], environment_ids[i], actor_types[i], actor_ids[i],
            actor_names[i], transports[i], actions[i], resources[i]::json, outcomes[i], reasons[i], confirmations[i],
            request_ids[i], source_addresses[i], user_agents[i], arguments[i]::json, appended_prev, appended_hash);
        RETURN NEXT;
    END LOOP;
END
$$
"""

SIGNATURE = "testgate_audit_append(" + ", ".join(["text[]", "timestamptz[]"] + ["text[]"] * 18) + ")"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
