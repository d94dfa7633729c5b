-- Migration 10 (PostgreSQL): what changed after each crawl, as SQLite's migration 10
-- (docs/changes.md). (Migrations 6, 8 and 9 are other changes'.)

-- name: create_digests
CREATE TABLE digests (
    run_id      bigint PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    state       text NOT NULL CHECK (state IN ('sending', 'sent', 'empty', 'failed')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  text,
    sent_at     timestamptz,
    updated_at  timestamptz NOT NULL
);

-- name: index_statements_first_seen
CREATE INDEX statements_first_seen ON statements (first_seen_at);

-- name: index_tally_history_observed
CREATE INDEX tally_history_observed ON tally_history (observed_at);
