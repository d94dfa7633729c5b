-- Migration 2 (PostgreSQL): shared politeness, as SQLite's migration 2. One row per host
-- (`scheme://host:port`), read and written by every process on every machine, so that
-- together they keep the host's request spacing, its 429/503 pauses and one robots.txt
-- verdict. Every request books on its host's row: a small, very hot row, hence a low
-- fillfactor (HOT updates) and eager autovacuum. Not a public table.

-- name: create_hosts
CREATE TABLE hosts (
    host                text COLLATE "C" PRIMARY KEY,
    next_at             timestamptz NOT NULL,   -- earliest start of the next request
    paused_until        timestamptz NOT NULL,   -- 429/503 Retry-After: nobody goes before
    robots_status       integer,                -- HTTP status of the last robots.txt fetch;
                                                -- NULL with robots_fetched_at set: unreachable
    robots_text         text,                   -- the body when robots_status = 200
    robots_fetched_at   timestamptz,            -- NULL: never fetched
    robots_expires_at   timestamptz,            -- fetch again from then on
    robots_failures     integer NOT NULL DEFAULT 0  -- consecutive 5xx/unreachable fetches
) WITH (
    fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0
);
