-- Migration 5 (PostgreSQL): SQLite's migration 5 tunes its FTS5 search index; the GIN
-- index of this dialect has no such setting. The twin keeps the numbers of both dialects
-- the same (docs/store-postgres.md).

-- name: search_merges
SELECT 1;
