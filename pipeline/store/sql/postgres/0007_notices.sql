-- Migration 7 (PostgreSQL): editorial notices, as SQLite's migration 7 (docs/store.md,
-- "notices"). (Migration 6 is another change's; numbers are applied by what a file lacks.)

-- name: create_notices
CREATE TABLE notices (
    doi            text COLLATE "C" NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    status         text NOT NULL CHECK (status <> ''),
    date           text NOT NULL DEFAULT '',
    notice_doi     text COLLATE "C" NOT NULL DEFAULT '',
    url            text,
    first_seen_at  timestamptz NOT NULL,
    last_seen_at   timestamptz NOT NULL,
    PRIMARY KEY (doi, status, date, notice_doi)
);
-- name: index_notices_first_seen
CREATE INDEX notices_first_seen ON notices (first_seen_at);
