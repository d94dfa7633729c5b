-- Migration 3 (SQLite): why a paper is incomplete, and bounded pagination.
--
-- papers.incomplete_reason: the reason a paper's report was stored in part (a dead page
-- after page 1, a pagination cut, fewer statements than the report counts); NULL when
-- whole. jobs.chain: what the earlier pages of a report's crawl in this round tell this
-- page (JSON: the addresses already fetched, the report's count, statements so far), so a
-- pagination cycle or an endless report is cut exactly. jobs.page_statements and
-- jobs.page_counted: what the page held when last read, for a refresh that finds it
-- unchanged (304). See docs/store.md.

-- name: add_papers_incomplete_reason
ALTER TABLE papers ADD COLUMN incomplete_reason TEXT;

-- name: index_papers_incomplete
-- status: incomplete papers by reason, without reading the whole table.
CREATE INDEX papers_incomplete ON papers (incomplete_reason) WHERE incomplete = 1;

-- name: add_jobs_chain
ALTER TABLE jobs ADD COLUMN chain TEXT;

-- name: add_jobs_page_statements
ALTER TABLE jobs ADD COLUMN page_statements INTEGER;

-- name: add_jobs_page_counted
ALTER TABLE jobs ADD COLUMN page_counted INTEGER;
