-- Migration 3 (PostgreSQL): why a paper is incomplete, and bounded pagination; as
-- SQLite's migration 3 (docs/store.md).
--
-- papers.incomplete_reason: the reason a paper's report was stored in part; NULL when
-- whole. jobs.chain: what the earlier pages of a report's crawl in this round tell this
-- page (JSON text, as in SQLite: the driver only carries it). jobs.page_statements and
-- jobs.page_counted: what the page held when last read, for a refresh that finds it
-- unchanged (304).

-- name: add_papers_incomplete_reason
ALTER TABLE papers ADD COLUMN incomplete_reason text;

-- name: index_papers_incomplete
-- status: incomplete papers by reason, without reading the whole table.
CREATE INDEX papers_incomplete ON papers (incomplete_reason) WHERE incomplete;

-- name: add_jobs_chain
ALTER TABLE jobs ADD COLUMN chain text;

-- name: add_jobs_page_statements
ALTER TABLE jobs ADD COLUMN page_statements integer;

-- name: add_jobs_page_counted
ALTER TABLE jobs ADD COLUMN page_counted integer;
