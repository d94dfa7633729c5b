-- Migration 12 (SQLite): when a report became incomplete, or complete again (`citepipe
-- changes`, docs/changes.md). (Migration 11 is another change's; numbers are applied by
-- what a file lacks.)

-- name: create_completeness_history
-- One row each time a report's completeness (papers.incomplete and incomplete_reason)
-- was found changed at the end of a crawl of it (the `completeness_snapshot` write, in
-- the transaction of that crawl's completion or dead job). A paper without rows has
-- always been complete. The last row by id is the state the history last saw.
CREATE TABLE completeness_history (
    id          INTEGER PRIMARY KEY,
    doi         TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    incomplete  INTEGER NOT NULL CHECK (incomplete IN (0, 1)),
    reason      TEXT,
    changed_at  TEXT NOT NULL
);

-- name: index_completeness_history_by_doi
CREATE INDEX completeness_history_by_doi ON completeness_history (doi, id);

-- name: index_completeness_history_changed
-- `changes`: the rows of a window.
CREATE INDEX completeness_history_changed ON completeness_history (changed_at);

-- name: seed_completeness_history
-- The papers incomplete before this migration: their state as of their last crawl, so
-- that staying incomplete is not news.
INSERT INTO completeness_history (doi, incomplete, reason, changed_at)
SELECT doi, 1, incomplete_reason, coalesce(last_crawled_at, first_seen_at)
FROM papers WHERE incomplete = 1 ORDER BY doi;
