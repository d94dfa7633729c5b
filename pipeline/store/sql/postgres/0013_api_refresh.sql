-- Migration 13 (PostgreSQL): crawl refreshes due papers through scite's API in batches
-- (docs/api.md). (Migrations 11 and 12 are other changes'; numbers are applied by what a
-- file lacks.)

-- name: index_papers_next_refresh
-- Every paper with a refresh time, whoever set it (a report's visit, or with source api
-- the API's tallies, which leave last_crawled_at NULL): what `due_refresh_dois` reads,
-- without scanning the papers.
CREATE INDEX papers_next_refresh ON papers (next_refresh_at)
    WHERE next_refresh_at IS NOT NULL;
