-- Migration 2 (SQLite): shared politeness. One row per host (`scheme://host:port`), read
-- and written by every process on the store, so that together they keep the host's
-- request spacing, its 429/503 pauses and one robots.txt verdict. Not a public table.
-- See docs/store.md, "Politeness".

-- name: create_hosts
CREATE TABLE hosts (
    host                TEXT PRIMARY KEY,
    next_at             TEXT NOT NULL,          -- earliest start of the next request
    paused_until        TEXT NOT NULL,          -- 429/503 Retry-After: nobody goes before
    robots_status       INTEGER,                -- HTTP status of the last robots.txt fetch;
                                                -- NULL with robots_fetched_at set: unreachable
    robots_text         TEXT,                   -- the body when robots_status = 200
    robots_fetched_at   TEXT,                   -- NULL: never fetched
    robots_expires_at   TEXT,                   -- fetch again from then on
    robots_failures     INTEGER NOT NULL DEFAULT 0  -- consecutive 5xx/unreachable fetches
);
