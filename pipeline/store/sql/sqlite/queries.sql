-- Named queries of the SQLite store, loaded once. Each starts with `-- name: <name>`.
-- Parameters are named (:name); timestamps are the driver's fixed-shape ISO strings
-- (sqlite.py converts datetimes), so comparing them as text compares times. This file is
-- SQLite's own: `INDEXED BY` and `json_each` are fine here. See docs/store.md.

-- ---------------------------------------------------------------- queue

-- name: enqueue
-- Insert jobs, or queue a finished (done/dead) one again for a newer round; validators
-- (etag, last_modified, content_hash, next_url) and what the page held are kept so the
-- refresh can be conditional. A next page carries its report's chain (page 1: NULL).
-- A whole chunk in one statement: :rows is a JSON array of
-- [doi, url, page, depth, round, not_before, chain] (one bind and one parse in C instead
-- of a bind per row), inserted in array order, as one INSERT a row would.
INSERT INTO jobs (doi, url, page, depth, round, state, attempts, not_before,
                  created_at, updated_at, chain)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, 'queued', 0,
       value ->> 5, :now, :now, value ->> 6
FROM json_each(:rows) WHERE true
ON CONFLICT (doi, page) DO UPDATE SET
    state = 'queued', attempts = 0, round = excluded.round, url = excluded.url,
    depth = excluded.depth, not_before = excluded.not_before, lease_until = NULL,
    worker = NULL, last_error = NULL, updated_at = excluded.updated_at,
    chain = excluded.chain
WHERE jobs.state IN ('done', 'dead') AND excluded.round > jobs.round;

-- name: enqueue_bump_round
-- A job still waiting (queued/failed) takes a newer round, so its follow-ups refresh too.
UPDATE jobs SET round = :round, updated_at = :now
WHERE doi = :doi AND page = :page AND state IN ('queued', 'failed') AND round < :round;

-- name: claim
-- INDEXED BY: walk the partial index in order and stop at :limit (no sort, whatever
-- the queue's size); the planner would otherwise pick jobs_by_state and sort.
UPDATE jobs
SET state = 'leased', attempts = attempts + 1, lease_until = :lease_until,
    worker = :worker, updated_at = :now
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_due
    WHERE state IN ('queued', 'failed') AND not_before <= :now
    ORDER BY not_before, id
    LIMIT :limit
)
RETURNING id, doi, url, page, attempts, depth, round, etag, last_modified, content_hash,
          next_url, not_before, chain, page_statements, page_counted;

-- name: requeue_expired
UPDATE jobs INDEXED BY jobs_leases
SET state = 'queued', lease_until = NULL, worker = NULL, updated_at = :now
WHERE state = 'leased' AND lease_until < :now;

-- name: extend_lease
UPDATE jobs SET lease_until = :lease_until, updated_at = :now
WHERE id = :id AND worker = :worker AND state = 'leased';

-- name: release
UPDATE jobs
SET state = 'queued', attempts = max(attempts - 1, 0), lease_until = NULL, worker = NULL,
    updated_at = :now
WHERE id = :id AND round = :round AND state = 'leased';

-- name: fail
UPDATE jobs
SET state = CASE WHEN :retry_at IS NULL THEN 'dead' ELSE 'failed' END,
    not_before = coalesce(:retry_at, not_before), last_error = :error,
    lease_until = NULL, worker = NULL, updated_at = :now
WHERE id = :id AND round = :round;

-- name: mark_incomplete
-- The report is stored in part: the first reason of a round is kept.
UPDATE papers SET incomplete = 1, incomplete_reason = :reason
WHERE doi = :doi AND incomplete = 0;

-- name: mark_done
UPDATE jobs
SET state = 'done', lease_until = NULL, worker = NULL, last_error = NULL,
    url = coalesce(:final_url, url),
    etag = coalesce(:etag, etag), last_modified = coalesce(:last_modified, last_modified),
    content_hash = coalesce(:content_hash, content_hash),
    next_url = CASE WHEN :has_result THEN :next_url ELSE next_url END,
    page_statements = CASE WHEN :has_result THEN :page_statements ELSE page_statements END,
    page_counted = CASE WHEN :has_result THEN :page_counted ELSE page_counted END,
    updated_at = :now
WHERE id = :id AND round = :round;

-- name: stale_page_one
-- Page-1 jobs of reports due for a refresh, with the round to use (the DOI's max + 1).
SELECT j.doi, j.url, j.depth,
       (SELECT max(j2.round) FROM jobs AS j2 WHERE j2.doi = j.doi) + 1 AS round
FROM papers AS p
JOIN jobs AS j ON j.doi = p.doi AND j.page = 1
WHERE p.last_crawled_at IS NOT NULL AND p.next_refresh_at <= :now
ORDER BY p.next_refresh_at, p.doi;

-- name: dead_jobs
-- `retry`: the dead jobs to queue again; :reason (a substring of the reason, any case)
-- and :dois (a JSON list) narrow it when not NULL.
SELECT id, doi, page, url, coalesce(last_error, '') AS reason FROM jobs
WHERE state = 'dead'
  AND (:reason IS NULL OR instr(lower(coalesce(last_error, '')), lower(:reason)) > 0)
  AND (:dois IS NULL OR doi IN (SELECT value FROM json_each(:dois)))
ORDER BY id;

-- name: requeue_dead
-- A dead job queued again at once, at a rebuilt address, with its attempts reset.
UPDATE jobs
SET state = 'queued', url = :url, attempts = 0, not_before = :now, last_error = NULL,
    lease_until = NULL, worker = NULL, updated_at = :now
WHERE id = :id AND state = 'dead';

-- name: pending
SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased', 'failed');

-- name: next_due
SELECT min(not_before) FROM jobs INDEXED BY jobs_due WHERE state IN ('queued', 'failed');

-- name: purge_done
-- Retention: done jobs of later pages (page > 1) untouched since :before. Page 1 stays,
-- so a backfill of the same DOI is still recognised and refresh still finds the report;
-- a refresh re-creates the later pages (without their validators).
DELETE FROM jobs
WHERE id IN (
    SELECT id FROM jobs INDEXED BY jobs_by_state
    WHERE state = 'done' AND page > 1 AND updated_at < :before
    LIMIT :limit
);

-- ---------------------------------------------------------------- completion

-- name: page_one_state
-- What adaptive refresh and tally history need to know about the reports in a batch.
SELECT p.doi, p.refresh_interval, t.doi IS NOT NULL AS has_tallies,
       t.supporting, t.mentioning, t.contrasting, t.citing_publications,
       t.citation_statements, t.references_count
FROM papers AS p LEFT JOIN tallies AS t ON t.doi = p.doi
WHERE p.doi IN (SELECT value FROM json_each(:dois));

-- name: upsert_paper
-- A report's own header: non-null new values overwrite.
INSERT INTO papers (doi, title, year, publication_date, journal, abstract,
                    abstract_truncated, report_url, first_seen_at)
VALUES (:doi, :title, :year, :publication_date, :journal, :abstract,
        :abstract_truncated, :report_url, :now)
ON CONFLICT (doi) DO UPDATE SET
    title = coalesce(excluded.title, papers.title),
    year = coalesce(excluded.year, papers.year),
    publication_date = coalesce(excluded.publication_date, papers.publication_date),
    journal = coalesce(excluded.journal, papers.journal),
    abstract = coalesce(excluded.abstract, papers.abstract),
    abstract_truncated = coalesce(excluded.abstract_truncated, papers.abstract_truncated),
    report_url = coalesce(excluded.report_url, papers.report_url);

-- name: upsert_partial_paper
-- A paper seen only as a citer (or a later page's header): fills NULL columns only, so
-- partial data never overwrites fuller data, whichever arrives first.
INSERT INTO papers (doi, title, year, journal, first_seen_at)
VALUES (:doi, :title, :year, :journal, :now)
ON CONFLICT (doi) DO UPDATE SET
    title = coalesce(papers.title, excluded.title),
    year = coalesce(papers.year, excluded.year),
    journal = coalesce(papers.journal, excluded.journal)
WHERE (papers.title IS NULL AND excluded.title IS NOT NULL)
   OR (papers.year IS NULL AND excluded.year IS NOT NULL)
   OR (papers.journal IS NULL AND excluded.journal IS NOT NULL);

-- name: record_visit
-- A page-1 visit: crawl time, the report is whole again (until a later page or a cut
-- says otherwise), the next refresh.
UPDATE papers
SET last_crawled_at = :crawled_at, incomplete = 0, incomplete_reason = NULL,
    refresh_interval = :refresh_interval, next_refresh_at = :next_refresh_at
WHERE doi = :doi;

-- name: delete_authors
DELETE FROM authors WHERE doi = :doi;

-- name: insert_author
INSERT INTO authors (doi, position, name) VALUES (:doi, :position, :name);

-- name: insert_tally_history
INSERT INTO tally_history (doi, supporting, mentioning, contrasting, citing_publications,
                           citation_statements, references_count, observed_at)
VALUES (:doi, :supporting, :mentioning, :contrasting, :citing_publications,
        :citation_statements, :references_count, :observed_at);

-- name: upsert_tallies
INSERT INTO tallies (doi, supporting, mentioning, contrasting, citing_publications,
                     citation_statements, references_count, observed_at)
VALUES (:doi, :supporting, :mentioning, :contrasting, :citing_publications,
        :citation_statements, :references_count, :observed_at)
ON CONFLICT (doi) DO UPDATE SET
    supporting = excluded.supporting, mentioning = excluded.mentioning,
    contrasting = excluded.contrasting, citing_publications = excluded.citing_publications,
    citation_statements = excluded.citation_statements,
    references_count = excluded.references_count, observed_at = excluded.observed_at;

-- name: delete_facets
DELETE FROM facets WHERE doi = :doi;

-- name: insert_facet
INSERT INTO facets (doi, facet, label, count) VALUES (:doi, :facet, :label, :count)
ON CONFLICT (doi, facet, label) DO UPDATE SET count = excluded.count;

-- name: upsert_statement
-- Seen again: the same row; last_seen_at moves, known details are refreshed.
INSERT INTO statements (cited_doi, citing_doi, snippet, snippet_hash, section, type,
                        confidence, first_seen_at, last_seen_at)
VALUES (:cited_doi, :citing_doi, :snippet, :snippet_hash, :section, :type, :confidence,
        :now, :now)
ON CONFLICT (cited_doi, citing_doi, snippet_hash) DO UPDATE SET
    last_seen_at = excluded.last_seen_at,
    section = coalesce(excluded.section, statements.section),
    type = coalesce(excluded.type, statements.type),
    confidence = coalesce(excluded.confidence, statements.confidence);

-- name: search_bulk_begin
-- The writer's batch indexes its new statements itself (migration 4, `search_bulk`).
UPDATE search_bulk SET bulk = 1;

-- name: statements_top
SELECT coalesce(max(id), 0) FROM statements;

-- name: search_index_new
-- The statements this transaction added (ids above :after_id), indexed in one statement.
INSERT INTO statements_fts (rowid, snippet)
SELECT id, snippet FROM statements WHERE id > :after_id;

-- name: search_bulk_end
UPDATE search_bulk SET bulk = 0;

-- ---------------------------------------------------------------- status

-- name: jobs_by_state
SELECT state, count(*) FROM jobs GROUP BY state;

-- name: dead_by_reason
SELECT coalesce(last_error, ''), count(*) FROM jobs WHERE state = 'dead'
GROUP BY 1 ORDER BY 2 DESC, 1;

-- name: dead_among
SELECT coalesce(last_error, ''), count(*) FROM jobs
WHERE state = 'dead' AND doi IN (SELECT value FROM json_each(:dois))
GROUP BY 1;

-- name: rows_by_table
SELECT 'papers', count(*) FROM papers
UNION ALL SELECT 'authors', count(*) FROM authors
UNION ALL SELECT 'tallies', count(*) FROM tallies
UNION ALL SELECT 'tally_history', count(*) FROM tally_history
UNION ALL SELECT 'facets', count(*) FROM facets
UNION ALL SELECT 'statements', count(*) FROM statements
UNION ALL SELECT 'jobs', count(*) FROM jobs
UNION ALL SELECT 'pages', count(*) FROM pages;

-- name: incomplete_by_reason
-- Papers stored in part, by the kind of reason (the text before its first ':').
SELECT substr(coalesce(incomplete_reason, ''), 1,
              instr(coalesce(incomplete_reason, '') || ':', ':') - 1) AS kind,
       count(*)
FROM papers INDEXED BY papers_incomplete WHERE incomplete = 1
GROUP BY 1 ORDER BY 2 DESC, 1;

-- name: not_found_reports
-- Reports the site does not have: page 1 dead as not found (404/410).
SELECT count(*) FROM jobs
WHERE state = 'dead' AND page = 1 AND last_error LIKE 'not found%';

-- name: pages_done_since
SELECT count(*) FROM jobs WHERE state = 'done' AND updated_at >= :since;

-- ---------------------------------------------------------------- runs

-- name: start_run
INSERT INTO runs (kind, host, pid, started_at, heartbeat_at)
VALUES (:kind, :host, :pid, :now, :now)
RETURNING id;

-- name: heartbeat_run
UPDATE runs SET heartbeat_at = :now WHERE id = :id;

-- name: finish_run
UPDATE runs SET heartbeat_at = :now, finished_at = :now, summary = :summary WHERE id = :id;

-- name: active_runs
SELECT id, kind, host, pid, started_at, heartbeat_at FROM runs
WHERE finished_at IS NULL AND heartbeat_at >= :since
ORDER BY id;

-- ---------------------------------------------------------------- export
-- Keyset pages in key order: `export_<table>` for the first page, `export_<table>_after`
-- for the next ones (row values compare as tuples). :limit rows a page.

-- name: export_papers
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason
FROM papers
ORDER BY doi LIMIT :limit;

-- name: export_papers_after
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason
FROM papers
WHERE doi > :after_doi
ORDER BY doi LIMIT :limit;

-- name: export_authors
SELECT doi, position, name
FROM authors
ORDER BY doi, position LIMIT :limit;

-- name: export_authors_after
SELECT doi, position, name
FROM authors
WHERE (doi, position) > (:after_doi, :after_position)
ORDER BY doi, position LIMIT :limit;

-- name: export_tallies
SELECT doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at
FROM tallies
ORDER BY doi LIMIT :limit;

-- name: export_tallies_after
SELECT doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at
FROM tallies
WHERE doi > :after_doi
ORDER BY doi LIMIT :limit;

-- name: export_tally_history
SELECT id, doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at
FROM tally_history
ORDER BY id LIMIT :limit;

-- name: export_tally_history_after
SELECT id, doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at
FROM tally_history
WHERE id > :after_id
ORDER BY id LIMIT :limit;

-- name: export_facets
SELECT doi, facet, label, count
FROM facets
ORDER BY doi, facet, label LIMIT :limit;

-- name: export_facets_after
SELECT doi, facet, label, count
FROM facets
WHERE (doi, facet, label) > (:after_doi, :after_facet, :after_label)
ORDER BY doi, facet, label LIMIT :limit;

-- name: export_statements
SELECT id, cited_doi, citing_doi, snippet, snippet_hash, section, type, confidence, first_seen_at, last_seen_at
FROM statements
ORDER BY id LIMIT :limit;

-- name: export_statements_after
SELECT id, cited_doi, citing_doi, snippet, snippet_hash, section, type, confidence, first_seen_at, last_seen_at
FROM statements
WHERE id > :after_id
ORDER BY id LIMIT :limit;

-- name: export_jobs
SELECT id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted
FROM jobs
ORDER BY id LIMIT :limit;

-- name: export_jobs_after
SELECT id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted
FROM jobs
WHERE id > :after_id
ORDER BY id LIMIT :limit;

-- name: export_citations
-- The `citations` view's rows, computed here from statements in the order its
-- statements_identity index serves (cited, citing), so each keyset page reads only its
-- own rows.
SELECT citing_doi, cited_doi, count(*) AS statements, count(*) FILTER (WHERE type = 'supporting') AS supporting,
       count(*) FILTER (WHERE type = 'mentioning') AS mentioning,
       count(*) FILTER (WHERE type = 'contrasting') AS contrasting
FROM statements
GROUP BY cited_doi, citing_doi
ORDER BY cited_doi, citing_doi LIMIT :limit;

-- name: export_citations_after
SELECT citing_doi, cited_doi, count(*) AS statements, count(*) FILTER (WHERE type = 'supporting') AS supporting,
       count(*) FILTER (WHERE type = 'mentioning') AS mentioning,
       count(*) FILTER (WHERE type = 'contrasting') AS contrasting
FROM statements
WHERE (cited_doi, citing_doi) > (:after_cited_doi, :after_citing_doi)
GROUP BY cited_doi, citing_doi
ORDER BY cited_doi, citing_doi LIMIT :limit;

-- name: export_pages
-- Kept pages (`copy-store` only: bodies are zlib bytes, not for a CSV).
SELECT doi, page, url, fetched_at, broken, error, size, body
FROM pages
ORDER BY doi, page LIMIT :limit;

-- name: export_pages_after
SELECT doi, page, url, fetched_at, broken, error, size, body
FROM pages
WHERE (doi, page) > (:after_doi, :after_page)
ORDER BY doi, page LIMIT :limit;

-- ---------------------------------------------------------------- politeness (hosts)

-- name: host_ensure
INSERT INTO hosts (host, next_at, paused_until) VALUES (:host, :now, :now)
ON CONFLICT (host) DO NOTHING;

-- name: host_state
SELECT next_at, paused_until FROM hosts WHERE host = :host;

-- name: host_book
-- The booking itself: the caller computed next_at = max(next_at, paused_until, now) + delay
-- from host_state inside the same write transaction (BEGIN IMMEDIATE holds SQLite's write
-- lock, so no other process books in between).
UPDATE hosts SET next_at = :next_at WHERE host = :host;

-- name: host_pause
INSERT INTO hosts (host, next_at, paused_until) VALUES (:host, :now, :until)
ON CONFLICT (host) DO UPDATE SET paused_until = max(hosts.paused_until, excluded.paused_until);

-- name: host_paused_until
SELECT paused_until FROM hosts WHERE host = :host;

-- name: robots_load
SELECT robots_status, robots_text, robots_fetched_at, robots_expires_at, robots_failures
FROM hosts WHERE host = :host AND robots_fetched_at IS NOT NULL;

-- name: robots_save
-- A newer fetch wins; an older one (a slower process) does not overwrite it.
INSERT INTO hosts (host, next_at, paused_until, robots_status, robots_text,
                   robots_fetched_at, robots_expires_at, robots_failures)
VALUES (:host, :fetched_at, :fetched_at, :status, :text, :fetched_at, :expires_at, :failures)
ON CONFLICT (host) DO UPDATE SET
    robots_status = excluded.robots_status, robots_text = excluded.robots_text,
    robots_fetched_at = excluded.robots_fetched_at,
    robots_expires_at = excluded.robots_expires_at,
    robots_failures = excluded.robots_failures
WHERE hosts.robots_fetched_at IS NULL OR hosts.robots_fetched_at <= excluded.robots_fetched_at;

-- ---------------------------------------------------------------- kept pages

-- name: keep_page
INSERT INTO pages (doi, page, url, fetched_at, broken, error, size, body)
VALUES (:doi, :page, :url, :fetched_at, :broken, :error, :size, :body)
ON CONFLICT (doi, page) DO UPDATE SET
    url = excluded.url, fetched_at = excluded.fetched_at, broken = excluded.broken,
    error = excluded.error, size = excluded.size, body = excluded.body;

-- name: forget_broken_page
-- A job completed: a broken page kept for it is stale (served by pages_broken).
DELETE FROM pages WHERE doi = :doi AND page = :page AND broken = 1;

-- name: kept_pages
-- Keyset pages of kept pages with their jobs, in (doi, page) order. :dois is a JSON
-- array, or NULL for every DOI; :broken_only 1 or 0.
SELECT p.doi, p.page, p.url AS page_url, p.fetched_at, p.broken, p.error, p.body,
       j.id, j.url, j.attempts, j.depth, j.round, j.etag, j.last_modified, j.content_hash,
       j.next_url, j.chain, j.page_statements, j.page_counted, j.state
FROM pages AS p
JOIN jobs AS j ON j.doi = p.doi AND j.page = p.page
WHERE (p.doi, p.page) > (:after_doi, :after_page)
  AND (:broken_only = 0 OR p.broken = 1)
  AND (:dois IS NULL OR p.doi IN (SELECT value FROM json_each(:dois)))
ORDER BY p.doi, p.page
LIMIT :limit;

-- name: settle_reparsed
-- Reports whose dead pages a reparse completed: whole again once no job of theirs is dead,
-- when a dead page was what made them incomplete (a cut pagination or a short report
-- stays as it was: the next crawl of page 1 decides).
UPDATE papers SET incomplete = 0, incomplete_reason = NULL
WHERE doi IN (SELECT value FROM json_each(:dois)) AND incomplete = 1
  AND incomplete_reason LIKE 'dead page:%'
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.doi = papers.doi AND jobs.state = 'dead');

-- ---------------------------------------------------------------- show and search

-- name: show_paper
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated,
       report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval,
       next_refresh_at, incomplete_reason
FROM papers WHERE doi = :doi;

-- name: show_authors
SELECT name FROM authors WHERE doi = :doi ORDER BY position;

-- name: show_tallies
SELECT supporting, mentioning, contrasting, citing_publications, citation_statements,
       references_count, observed_at
FROM tallies WHERE doi = :doi;

-- name: show_history
SELECT supporting, mentioning, contrasting, citing_publications, citation_statements,
       references_count, observed_at
FROM tally_history WHERE doi = :doi ORDER BY observed_at, id;

-- name: show_facets
SELECT facet, label, count FROM facets WHERE doi = :doi ORDER BY facet, count DESC, label;

-- name: show_statements
-- Statements citing the paper (its report), with the citer's title where known.
SELECT s.id, s.citing_doi, c.title AS citing_title, c.year AS citing_year, s.type,
       s.section, s.confidence, s.snippet, s.first_seen_at, s.last_seen_at
FROM statements AS s LEFT JOIN papers AS c ON c.doi = s.citing_doi
WHERE s.cited_doi = :doi
ORDER BY s.id
LIMIT :limit;

-- name: show_citing_count
SELECT count(*) FROM statements WHERE citing_doi = :doi;

-- name: search_statements
-- Full-text search (FTS5 query syntax), best match first (bm25); :type NULL for any.
SELECT s.id, s.cited_doi, s.citing_doi, s.type, s.section, s.snippet,
       highlight(statements_fts, 0, '[', ']') AS highlighted,
       snippet(statements_fts, 0, '[', ']', '…', 32) AS excerpt,
       statements_fts.rank AS rank
FROM statements_fts
JOIN statements AS s ON s.id = statements_fts.rowid
WHERE statements_fts MATCH :query
  AND (:type IS NULL OR s.type = :type)
ORDER BY statements_fts.rank, s.id
LIMIT :limit;

-- ---------------------------------------------------------------- copy-store
-- `last_<table>`: the highest key (where a resumed copy goes on from);
-- `import_<table>`: one exported row (export's shape: ISO text times, 0/1 flags), kept
-- as it is, ids included; a row already there is left alone, so a copy can resume.

-- name: last_papers
SELECT doi FROM papers ORDER BY doi DESC LIMIT 1;

-- name: import_papers
INSERT INTO papers (doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason)
VALUES (:doi, :title, :year, :publication_date, :journal, :abstract, :abstract_truncated, :report_url, :first_seen_at, :last_crawled_at, :incomplete, :refresh_interval, :next_refresh_at, :incomplete_reason)
ON CONFLICT DO NOTHING;

-- name: last_authors
SELECT doi, position FROM authors ORDER BY doi DESC, position DESC LIMIT 1;

-- name: import_authors
INSERT INTO authors (doi, position, name)
VALUES (:doi, :position, :name)
ON CONFLICT DO NOTHING;

-- name: last_tallies
SELECT doi FROM tallies ORDER BY doi DESC LIMIT 1;

-- name: import_tallies
INSERT INTO tallies (doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at)
VALUES (:doi, :supporting, :mentioning, :contrasting, :citing_publications, :citation_statements, :references_count, :observed_at)
ON CONFLICT DO NOTHING;

-- name: last_tally_history
SELECT id FROM tally_history ORDER BY id DESC LIMIT 1;

-- name: import_tally_history
INSERT INTO tally_history (id, doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at)
VALUES (:id, :doi, :supporting, :mentioning, :contrasting, :citing_publications, :citation_statements, :references_count, :observed_at)
ON CONFLICT DO NOTHING;

-- name: last_facets
SELECT doi, facet, label FROM facets ORDER BY doi DESC, facet DESC, label DESC LIMIT 1;

-- name: import_facets
INSERT INTO facets (doi, facet, label, count)
VALUES (:doi, :facet, :label, :count)
ON CONFLICT DO NOTHING;

-- name: last_statements
SELECT id FROM statements ORDER BY id DESC LIMIT 1;

-- name: import_statements
INSERT INTO statements (id, cited_doi, citing_doi, snippet, snippet_hash, section, type, confidence, first_seen_at, last_seen_at)
VALUES (:id, :cited_doi, :citing_doi, :snippet, :snippet_hash, :section, :type, :confidence, :first_seen_at, :last_seen_at)
ON CONFLICT DO NOTHING;

-- name: last_jobs
SELECT id FROM jobs ORDER BY id DESC LIMIT 1;

-- name: import_jobs
INSERT INTO jobs (id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted)
VALUES (:id, :doi, :url, :page, :state, :attempts, :not_before, :lease_until, :last_error, :depth, :created_at, :updated_at, :round, :worker, :etag, :last_modified, :content_hash, :next_url, :chain, :page_statements, :page_counted)
ON CONFLICT DO NOTHING;

-- name: last_pages
SELECT doi, page FROM pages ORDER BY doi DESC, page DESC LIMIT 1;

-- name: import_pages
INSERT INTO pages (doi, page, url, fetched_at, broken, error, size, body)
VALUES (:doi, :page, :url, :fetched_at, :broken, :error, :size, :body)
ON CONFLICT DO NOTHING;
