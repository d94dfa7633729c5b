-- Named queries of the SQLite store, loaded once. Each starts with `-- name: <name>`.
-- Parameters are named (:name); timestamps are the driver's fixed-shape ISO strings
-- (sqlite.py converts datetimes), so comparing them as text compares times. This file is
-- SQLite's own: `INDEXED BY` and `json_each` are fine here. The queries both dialects
-- run as they are live in common/queries.sql (a name is defined in one file only). See
-- docs/store.md.

-- ---------------------------------------------------------------- queue

-- name: enqueue
-- Insert jobs, or queue a finished (done/dead) one again for a newer round; validators
-- (etag, last_modified, content_hash, next_url) and what the page held are kept so the
-- refresh can be conditional. A next page carries its report's chain (page 1: NULL).
-- A whole chunk in one statement: :rows is a JSON array of
-- [doi, url, page, depth, round, not_before, chain, batch] (one bind and one parse in C
-- instead of a bind per row), inserted in array order, as one INSERT a row would.
INSERT INTO jobs (doi, url, page, depth, round, state, attempts, not_before,
                  created_at, updated_at, chain, batch)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, 'queued', 0,
       value ->> 5, :now, :now, value ->> 6, value ->> 7
FROM json_each(:rows) WHERE true
ON CONFLICT (doi, page) DO UPDATE SET
    state = 'queued', attempts = 0, round = excluded.round, url = excluded.url,
    depth = excluded.depth, not_before = excluded.not_before, lease_until = NULL,
    worker = NULL, last_error = NULL, updated_at = excluded.updated_at,
    chain = excluded.chain
WHERE jobs.state IN ('done', 'dead') AND excluded.round > jobs.round;

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
          next_url, not_before, chain, page_statements, page_counted, batch;

-- name: requeue_expired
UPDATE jobs INDEXED BY jobs_leases
SET state = 'queued', lease_until = NULL, worker = NULL, updated_at = :now
WHERE state = 'leased' AND lease_until < :now;

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

-- name: mark_fewer_than_api
-- A paper whose report was read (last_crawled_at) holding fewer statements than the API's
-- `total` counts: incomplete, in the words of the report's own shortfall (the first
-- reason of a round is kept). Run after a report's last page (:job, still leased here)
-- and after the API's tallies (:job 0); never while another page of the report waits,
-- whose statements would come after the count.
UPDATE papers
SET incomplete = 1,
    incomplete_reason = 'fewer statements than the API counts: '
        || (SELECT count(*) FROM statements WHERE cited_doi = :doi) || ' of '
        || (SELECT api_statements FROM tallies WHERE doi = :doi)
WHERE doi = :doi AND incomplete = 0 AND last_crawled_at IS NOT NULL
  AND (SELECT api_statements FROM tallies WHERE doi = :doi)
      > (SELECT count(*) FROM statements WHERE cited_doi = :doi)
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.doi = :doi AND jobs.id <> :job
                  AND jobs.state IN ('queued', 'leased', 'failed'));

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

-- ---------------------------------------------------------------- the API (migration 9)

-- name: dead_among
SELECT coalesce(last_error, ''), count(*) FROM jobs
WHERE state = 'dead' AND doi IN (SELECT value FROM json_each(:dois))
GROUP BY 1;

-- name: incomplete_by_reason
-- Papers stored in part, by the kind of reason (the text before its first ':').
SELECT substr(coalesce(incomplete_reason, ''), 1,
              instr(coalesce(incomplete_reason, '') || ':', ':') - 1) AS kind,
       count(*)
FROM papers INDEXED BY papers_incomplete WHERE incomplete = 1
GROUP BY 1 ORDER BY 2 DESC, 1;

-- ---------------------------------------------------------------- export
-- Keyset pages in key order: `export_<table>` for the first page, `export_<table>_after`
-- for the next ones (row values compare as tuples). :limit rows a page.

-- name: export_papers
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason, retracted, volume, issue, pages
FROM papers
ORDER BY doi LIMIT :limit;

-- name: export_papers_after
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason, retracted, volume, issue, pages
FROM papers
WHERE doi > :after_doi
ORDER BY doi LIMIT :limit;

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

-- name: forget_broken_page
-- A job completed: a broken page kept for it is stale (served by pages_broken).
DELETE FROM pages WHERE doi = :doi AND page = :page AND broken = 1;

-- name: kept_pages
-- Keyset pages of kept pages with their jobs, in (doi, page) order. :dois is a JSON
-- array, or NULL for every DOI; :broken_only 1 or 0.
SELECT p.doi, p.page, p.url AS page_url, p.fetched_at, p.broken, p.error, p.body,
       p.media_type, p.charset,
       j.id, j.url, j.attempts, j.depth, j.round, j.etag, j.last_modified, j.content_hash,
       j.next_url, j.chain, j.page_statements, j.page_counted, j.batch, j.state
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

-- name: import_papers
INSERT INTO papers (doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason, retracted, volume, issue, pages)
VALUES (:doi, :title, :year, :publication_date, :journal, :abstract, :abstract_truncated, :report_url, :first_seen_at, :last_crawled_at, :incomplete, :refresh_interval, :next_refresh_at, :incomplete_reason, :retracted, :volume, :issue, :pages)
ON CONFLICT DO NOTHING;

-- name: import_tallies
INSERT INTO tallies (doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at, source, api_statements)
VALUES (:doi, :supporting, :mentioning, :contrasting, :citing_publications, :citation_statements, :references_count, :observed_at, :source, :api_statements)
ON CONFLICT DO NOTHING;

-- name: import_tally_history
INSERT INTO tally_history (id, doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at)
VALUES (:id, :doi, :supporting, :mentioning, :contrasting, :citing_publications, :citation_statements, :references_count, :observed_at)
ON CONFLICT DO NOTHING;

-- name: import_statements
INSERT INTO statements (id, cited_doi, citing_doi, snippet, snippet_hash, section, type, confidence, first_seen_at, last_seen_at)
VALUES (:id, :cited_doi, :citing_doi, :snippet, :snippet_hash, :section, :type, :confidence, :first_seen_at, :last_seen_at)
ON CONFLICT DO NOTHING;

-- name: import_jobs
INSERT INTO jobs (id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted, batch)
VALUES (:id, :doi, :url, :page, :state, :attempts, :not_before, :lease_until, :last_error, :depth, :created_at, :updated_at, :round, :worker, :etag, :last_modified, :content_hash, :next_url, :chain, :page_statements, :page_counted, :batch)
ON CONFLICT DO NOTHING;

-- name: run_record
-- One run, finished or not, with the pages it fetched (its summary's `pages`).
SELECT id, kind, started_at, finished_at, coalesce(json_extract(summary, '$.pages'), 0) AS pages
FROM runs WHERE id = :id;

-- name: last_fetching_run
-- The latest finished run of these kinds that fetched anything: `changes` without --since.
SELECT id, kind, started_at, finished_at, coalesce(json_extract(summary, '$.pages'), 0) AS pages
FROM runs
WHERE finished_at IS NOT NULL AND kind IN (SELECT value FROM json_each(:kinds)) AND coalesce(json_extract(summary, '$.pages'), 0) > 0
ORDER BY finished_at DESC, id DESC
LIMIT 1;

-- name: changes_statements
-- Statements first seen in the window, with the citer's title where known.
SELECT s.cited_doi, s.citing_doi, c.title AS citing_title, s.type, s.section,
       s.confidence, s.snippet
FROM statements AS s LEFT JOIN papers AS c ON c.doi = s.citing_doi
WHERE s.first_seen_at >= :since AND s.first_seen_at <= :until
  AND (:dois IS NULL OR s.cited_doi IN (SELECT value FROM json_each(:dois)))
ORDER BY s.cited_doi, s.id;

-- name: changes_tallies_after
-- Each paper's last tally history row inside the window (rows are written when tallies
-- move, and at a report's first visit).
SELECT h.doi, h.supporting, h.mentioning, h.contrasting
FROM tally_history AS h
WHERE h.observed_at >= :since AND h.observed_at <= :until
  AND (:dois IS NULL OR h.doi IN (SELECT value FROM json_each(:dois)))
  AND NOT EXISTS (
      SELECT 1 FROM tally_history AS l
      WHERE l.doi = h.doi AND l.observed_at <= :until
        AND (l.observed_at, l.id) > (h.observed_at, h.id)
  )
ORDER BY h.doi;

-- name: changes_notices
-- Editorial notices first seen in the window.
SELECT doi, status, date, notice_doi, url FROM notices
WHERE first_seen_at >= :since AND first_seen_at <= :until
  AND (:dois IS NULL OR doi IN (SELECT value FROM json_each(:dois)))
ORDER BY doi, date, status, notice_doi;

-- name: changes_titles
SELECT doi, title FROM papers WHERE doi IN (SELECT value FROM json_each(:dois));

-- name: digest_claim
-- Take these runs' digests in hand for sending: a run never recorded, or one whose
-- sending failed. Returns the runs taken (a run sent, empty or being sent is not).
INSERT INTO digests (run_id, state, attempts, updated_at)
SELECT value, 'sending', 0, :now FROM json_each(:run_ids) WHERE true
ON CONFLICT (run_id) DO UPDATE SET state = 'sending', updated_at = excluded.updated_at
WHERE digests.state = 'failed'
RETURNING run_id;

-- name: digest_settle
-- How the sending of digests taken in hand ended: sent, empty or failed.
UPDATE digests
SET state = :state, attempts = attempts + :attempts, last_error = :error,
    sent_at = CASE WHEN :state = 'sent' THEN :now ELSE sent_at END, updated_at = :now
WHERE run_id IN (SELECT value FROM json_each(:run_ids)) AND state = 'sending';

-- ---------------------------------------------------------------- provenance (migration 8)

-- name: provenance_seed
-- An input DOI is its own seed, at depth 0 (written with its job).
INSERT INTO provenance (doi, seed, depth) VALUES (:doi, :doi, 0)
ON CONFLICT (doi, seed) DO UPDATE SET depth = 0 WHERE provenance.depth > 0;

-- name: provenance_reach
-- A citing paper named on a report's page: the report's seeds, one citing step further;
-- the fewest steps are kept. A report without provenance (crawled before it was kept,
-- or by a refresh) passes none on.
INSERT INTO provenance (doi, seed, depth)
SELECT :doi, seed, depth + 1 FROM provenance WHERE doi = :via ORDER BY seed
ON CONFLICT (doi, seed) DO UPDATE SET depth = excluded.depth
WHERE excluded.depth < provenance.depth;

-- name: upsert_api_paper
-- A paper's metadata from the API fills what the store lacks (a report page's header is
-- better: it is never overwritten); `retracted`, `volume`, `issue` and `pages` are the
-- API's alone (no report page shows them): its latest known value is taken.
INSERT INTO papers (doi, title, year, journal, abstract, retracted, volume, issue, pages, first_seen_at)
VALUES (:doi, :title, :year, :journal, :abstract, :retracted, :volume, :issue, :pages, :now)
ON CONFLICT (doi) DO UPDATE SET
    title = coalesce(papers.title, excluded.title),
    year = coalesce(papers.year, excluded.year),
    journal = coalesce(papers.journal, excluded.journal),
    abstract = coalesce(papers.abstract, excluded.abstract),
    retracted = coalesce(excluded.retracted, papers.retracted),
    volume = coalesce(excluded.volume, papers.volume),
    issue = coalesce(excluded.issue, papers.issue),
    pages = coalesce(excluded.pages, papers.pages);

-- name: import_notices
INSERT INTO notices (doi, status, date, notice_doi, url, first_seen_at, last_seen_at)
VALUES (:doi, :status, :date, :notice_doi, :url, :first_seen_at, :last_seen_at)
ON CONFLICT DO NOTHING;

-- name: export_pages
-- Kept pages (`copy-store` only: bodies are zlib bytes, not for a CSV).
SELECT doi, page, url, fetched_at, broken, error, size, body, media_type, charset
FROM pages
ORDER BY doi, page LIMIT :limit;

-- name: export_pages_after
SELECT doi, page, url, fetched_at, broken, error, size, body, media_type, charset
FROM pages
WHERE (doi, page) > (:after_doi, :after_page)
ORDER BY doi, page LIMIT :limit;

-- ---------------------------------------------------------------- politeness (hosts)

-- name: import_pages
INSERT INTO pages (doi, page, url, fetched_at, broken, error, size, body, media_type, charset)
VALUES (:doi, :page, :url, :fetched_at, :broken, :error, :size, :body, :media_type, :charset)
ON CONFLICT DO NOTHING;

-- name: completeness_baseline
-- Before a crawl's writes: a paper incomplete without any history row (a store copied
-- without its history) gets its state as of its last crawl, so that staying incomplete is
-- not news.
INSERT INTO completeness_history (doi, incomplete, reason, changed_at)
SELECT p.doi, 1, p.incomplete_reason, coalesce(p.last_crawled_at, p.first_seen_at)
FROM papers AS p
WHERE p.doi = :doi AND p.incomplete = 1
  AND NOT EXISTS (SELECT 1 FROM completeness_history AS h WHERE h.doi = p.doi);

-- name: completeness_snapshot
-- At the end of a report's crawl (or its dead page): a history row when its completeness
-- differs from the last row (none: complete): incomplete or not, or the reason's kind (its
-- text before the first `:`; the same cut with new figures is no change).
INSERT INTO completeness_history (doi, incomplete, reason, changed_at)
SELECT p.doi, p.incomplete, p.incomplete_reason, :now
FROM papers AS p
WHERE p.doi = :doi
  AND coalesce(
        (SELECT h.incomplete || '|' || trim(substr(coalesce(h.reason, ''), 1,
                  instr(coalesce(h.reason, '') || ':', ':') - 1))
         FROM completeness_history AS h
         WHERE h.doi = p.doi ORDER BY h.id DESC LIMIT 1),
        '0|'
      ) <> p.incomplete || '|' || trim(substr(coalesce(p.incomplete_reason, ''), 1,
                  instr(coalesce(p.incomplete_reason, '') || ':', ':') - 1));

-- name: changes_completeness
-- Each paper's last completeness row inside the window, and its last row before it
-- (NULLs: none, the paper was complete).
SELECT a.doi, a.incomplete AS after_incomplete, a.reason AS after_reason,
       b.incomplete AS before_incomplete, b.reason AS before_reason
FROM completeness_history AS a
LEFT JOIN completeness_history AS b ON b.id = (
    SELECT max(e.id) FROM completeness_history AS e
    WHERE e.doi = a.doi AND e.changed_at < :since
)
WHERE a.changed_at >= :since AND a.changed_at <= :until
  AND (:dois IS NULL OR a.doi IN (SELECT value FROM json_each(:dois)))
  AND a.id = (
      SELECT max(l.id) FROM completeness_history AS l
      WHERE l.doi = a.doi AND l.changed_at >= :since AND l.changed_at <= :until
  )
ORDER BY a.doi;
