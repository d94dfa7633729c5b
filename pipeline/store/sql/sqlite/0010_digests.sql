-- Migration 10 (SQLite): what changed after each crawl (`citepipe changes`, `--notify`).
-- See docs/changes.md and docs/store.md, "digests". (Migrations 6, 8 and 9 are other
-- changes'; numbers are applied by what a file lacks.)

-- name: create_digests
-- One row per run whose digest a `--notify` run took in hand. `state`: sending (taken,
-- being sent), sent, empty (nothing changed and `notify_empty` off: nothing sent), failed
-- (given up after its retries; the next run's notification sends it with its own).
-- A row in any state but failed is never sent again: each run's digest goes out at most
-- once.
CREATE TABLE digests (
    run_id      INTEGER PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    state       TEXT NOT NULL CHECK (state IN ('sending', 'sent', 'empty', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  TEXT,
    sent_at     TEXT,
    updated_at  TEXT NOT NULL
);

-- name: index_statements_first_seen
-- `changes`: the statements first seen in a window, without reading them all.
CREATE INDEX statements_first_seen ON statements (first_seen_at);

-- name: index_tally_history_observed
-- `changes`: the tally history rows of a window.
CREATE INDEX tally_history_observed ON tally_history (observed_at);
