-- Named queries of the PostgreSQL store, loaded once; the same names as sqlite/queries.sql
-- where the meaning is the same. Each starts with `-- name: <name>`. Parameters are named
-- (:name); the driver (postgres.py) turns them into $1, $2... in order of first use, so a
-- name used twice is one parameter. Times are timestamptz (aware datetimes in and out).
-- This file is PostgreSQL's own: `FOR UPDATE SKIP LOCKED`, `= ANY(array)`, `greatest()`,
-- `make_interval()` are fine here. The queries both dialects run as they are live in
-- common/queries.sql (a name is defined in one file only). See docs/store.md and
-- docs/store-postgres.md.

-- ---------------------------------------------------------------- queue

-- name: enqueue
-- Insert a job, or queue a finished (done/dead) one again for a newer round; validators
-- (etag, last_modified, content_hash, next_url) and what the page held are kept so the
-- refresh can be conditional. A next page carries its report's chain (page 1: NULL).
-- RETURNING: a row for each job added or requeued (what enqueue counts).
INSERT INTO jobs AS j (doi, url, page, depth, round, state, attempts, not_before,
                       created_at, updated_at, chain, batch)
VALUES (:doi, :url, :page, :depth, :round, 'queued', 0, :not_before, :now, :now,
        :chain::text, :batch::text)
ON CONFLICT (doi, page) DO UPDATE SET
    state = 'queued', attempts = 0, round = excluded.round, url = excluded.url,
    depth = excluded.depth, not_before = excluded.not_before, lease_until = NULL,
    worker = NULL, last_error = NULL, updated_at = excluded.updated_at,
    chain = excluded.chain
WHERE j.state IN ('done', 'dead') AND excluded.round > j.round
RETURNING 1;

-- name: claim
-- One statement (graphile-worker's and Oban's shape): the CTE walks the partial index
-- jobs_due in order and stops at :limit; SKIP LOCKED passes over rows another claimer
-- is taking right now instead of waiting for it, so claimers never block each other and
-- never get the same job.
WITH due AS (
    SELECT id FROM jobs
    WHERE state IN ('queued', 'failed') AND not_before <= :now
    ORDER BY not_before, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
)
UPDATE jobs AS j
SET state = 'leased', attempts = j.attempts + 1, lease_until = :lease_until,
    worker = :worker, updated_at = :now
FROM due
WHERE j.id = due.id
RETURNING j.id, j.doi, j.url, j.page, j.attempts, j.depth, j.round, j.etag,
          j.last_modified, j.content_hash, j.next_url, j.not_before, j.chain,
          j.page_statements, j.page_counted, j.batch;

-- name: requeue_expired
-- Anyone takes back expired leases; SKIP LOCKED: two processes doing it at once share
-- the work instead of waiting on (or deadlocking over) each other's rows.
UPDATE jobs AS j
SET state = 'queued', lease_until = NULL, worker = NULL, updated_at = :now
FROM (
    SELECT id FROM jobs WHERE state = 'leased' AND lease_until < :now
    FOR UPDATE SKIP LOCKED
) AS expired
WHERE j.id = expired.id;

-- name: release
UPDATE jobs
SET state = 'queued', attempts = greatest(attempts - 1, 0), lease_until = NULL,
    worker = NULL, updated_at = :now
WHERE id = :id AND round = :round AND state = 'leased';

-- name: fail
UPDATE jobs
SET state = CASE WHEN :retry_at::timestamptz IS NULL THEN 'dead' ELSE 'failed' END,
    not_before = coalesce(:retry_at::timestamptz, not_before), last_error = :error,
    lease_until = NULL, worker = NULL, updated_at = :now
WHERE id = :id AND round = :round
RETURNING 1;

-- name: mark_incomplete
-- The report is stored in part: the first reason of a round is kept.
UPDATE papers SET incomplete = true, incomplete_reason = :reason::text
WHERE doi = :doi AND NOT incomplete;

-- name: mark_fewer_than_api
-- A paper whose report was read (last_crawled_at) holding fewer statements than the API's
-- `total` counts: incomplete, in the words of the report's own shortfall (the first
-- reason of a round is kept). Run after a report's last page (:job, still leased here)
-- and after the API's tallies (:job 0); never while another page of the report waits,
-- whose statements would come after the count.
UPDATE papers
SET incomplete = true,
    incomplete_reason = 'fewer statements than the API counts: '
        || (SELECT count(*) FROM statements WHERE cited_doi = :doi::text) || ' of '
        || (SELECT api_statements FROM tallies WHERE doi = :doi::text)
WHERE doi = :doi::text AND NOT incomplete AND last_crawled_at IS NOT NULL
  AND (SELECT api_statements FROM tallies WHERE doi = :doi::text)
      > (SELECT count(*) FROM statements WHERE cited_doi = :doi::text)
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.doi = :doi::text AND jobs.id <> :job::bigint
                  AND jobs.state IN ('queued', 'leased', 'failed'));

-- name: mark_done
UPDATE jobs
SET state = 'done', lease_until = NULL, worker = NULL, last_error = NULL,
    url = coalesce(:final_url::text, url),
    etag = coalesce(:etag::text, etag),
    last_modified = coalesce(:last_modified::text, last_modified),
    content_hash = coalesce(:content_hash::text, content_hash),
    next_url = CASE WHEN :has_result::boolean THEN :next_url::text ELSE next_url END,
    page_statements = CASE WHEN :has_result::boolean THEN :page_statements::integer
                           ELSE page_statements END,
    page_counted = CASE WHEN :has_result::boolean THEN :page_counted::integer
                        ELSE page_counted END,
    updated_at = :now
WHERE id = :id AND round = :round;

-- name: dead_jobs
-- `retry`: the dead jobs to queue again; :reason (a substring of the reason, any case)
-- and :dois (an array) narrow it when not NULL.
SELECT id, doi, page, url, coalesce(last_error, '') AS reason FROM jobs
WHERE state = 'dead'
  AND (:reason::text IS NULL
       OR strpos(lower(coalesce(last_error, '')), lower(:reason::text)) > 0)
  AND (:dois::text[] IS NULL OR doi = ANY(:dois::text[]))
ORDER BY id;

-- name: requeue_dead
-- A dead job queued again at once, at a rebuilt address, with its attempts reset.
UPDATE jobs
SET state = 'queued', url = :url, attempts = 0, not_before = :now, last_error = NULL,
    lease_until = NULL, worker = NULL, updated_at = :now
WHERE id = :id AND state = 'dead'
RETURNING 1;

-- name: next_due
SELECT min(not_before) FROM jobs WHERE state IN ('queued', 'failed');

-- name: purge_done
-- Retention: done jobs of later pages (page > 1) untouched since :before. Page 1 stays,
-- so a backfill of the same DOI is still recognised and refresh still finds the report;
-- a refresh re-creates the later pages (without their validators).
DELETE FROM jobs
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'done' AND page > 1 AND updated_at < :before
    LIMIT :limit
);

-- ---------------------------------------------------------------- completion

-- name: lock_writes
-- Completion batches of all processes write one at a time (as SQLite's one writer).
-- Their rows overlap (the same citing papers appear in many reports), and two batches
-- upserting them in different orders deadlock, each costing deadlock_timeout. A session
-- advisory lock, taken first in the transaction and given back (`unlock_writes`) as its
-- last statement, just before COMMIT: the next batch writes while this one's commit waits
-- for its WAL flush, and PostgreSQL can flush several commits at once. Claims, fetches
-- and parsing stay parallel.
SELECT pg_advisory_lock(7165064484209518);

-- name: unlock_writes
SELECT pg_advisory_unlock(7165064484209518);

-- name: page_one_state
-- What adaptive refresh and tally history need to know about the reports in a batch.
SELECT p.doi, p.refresh_interval, t.doi IS NOT NULL AS has_tallies,
       t.supporting, t.mentioning, t.contrasting, t.citing_publications,
       t.citation_statements, t.references_count
FROM papers AS p LEFT JOIN tallies AS t ON t.doi = p.doi
WHERE p.doi = ANY(:dois::text[]);

-- name: upsert_paper
-- A report's own header: non-null new values overwrite.
INSERT INTO papers AS p (doi, title, year, publication_date, journal, abstract,
                         abstract_truncated, report_url, first_seen_at)
VALUES (:doi, :title, :year, :publication_date, :journal, :abstract,
        :abstract_truncated::integer::boolean, :report_url, :now)
ON CONFLICT (doi) DO UPDATE SET
    title = coalesce(excluded.title, p.title),
    year = coalesce(excluded.year, p.year),
    publication_date = coalesce(excluded.publication_date, p.publication_date),
    journal = coalesce(excluded.journal, p.journal),
    abstract = coalesce(excluded.abstract, p.abstract),
    abstract_truncated = coalesce(excluded.abstract_truncated, p.abstract_truncated),
    report_url = coalesce(excluded.report_url, p.report_url);

-- name: upsert_partial_paper_set
-- upsert_partial_paper for a whole batch in one statement (citers are most of a page's
-- rows): one row per DOI, merged by the driver in batch order (each column the first
-- non-NULL value; `now` of the first row), in DOI order. Fills NULL columns only, so
-- partial data never overwrites fuller data, whichever arrives first.
INSERT INTO papers AS p (doi, title, year, journal, first_seen_at)
SELECT * FROM unnest(:doi::text[], :title::text[], :year::integer[], :journal::text[],
                     :now::timestamptz[])
ON CONFLICT (doi) DO UPDATE SET
    title = coalesce(p.title, excluded.title),
    year = coalesce(p.year, excluded.year),
    journal = coalesce(p.journal, excluded.journal)
WHERE (p.title IS NULL AND excluded.title IS NOT NULL)
   OR (p.year IS NULL AND excluded.year IS NOT NULL)
   OR (p.journal IS NULL AND excluded.journal IS NOT NULL);

-- name: record_visit
-- A page-1 visit: crawl time, the report is whole again (until a later page or a cut
-- says otherwise), the next refresh.
UPDATE papers
SET last_crawled_at = :crawled_at, incomplete = false, incomplete_reason = NULL,
    refresh_interval = :refresh_interval, next_refresh_at = :next_refresh_at
WHERE doi = :doi;

-- name: upsert_statement_set
-- upsert_statement for a whole batch in one statement: one row per identity, merged by
-- the driver in batch order (first_seen_at of the first sighting, last_seen_at and the
-- non-NULL details of the latest). Seen again: the same row; last_seen_at moves, known
-- details are refreshed.
INSERT INTO statements AS s (cited_doi, citing_doi, snippet, snippet_hash, section, type,
                             confidence, first_seen_at, last_seen_at)
SELECT * FROM unnest(:cited_doi::text[], :citing_doi::text[], :snippet::text[],
                     :snippet_hash::text[], :section::text[], :type::text[],
                     :confidence::double precision[], :first_seen_at::timestamptz[],
                     :last_seen_at::timestamptz[])
ON CONFLICT (cited_doi, citing_doi, snippet_hash) DO UPDATE SET
    last_seen_at = excluded.last_seen_at,
    section = coalesce(excluded.section, s.section),
    type = coalesce(excluded.type, s.type),
    confidence = coalesce(excluded.confidence, s.confidence);

-- ---------------------------------------------------------------- the API (migration 9)

-- name: dead_among
SELECT coalesce(last_error, ''), count(*) FROM jobs
WHERE state = 'dead' AND doi = ANY(:dois::text[])
GROUP BY 1;

-- name: incomplete_by_reason
-- Papers stored in part, by the kind of reason (the text before its first ':').
SELECT split_part(coalesce(incomplete_reason, ''), ':', 1) COLLATE "C" AS kind, count(*)
FROM papers WHERE incomplete
GROUP BY 1 ORDER BY 2 DESC, 1;

-- ---------------------------------------------------------------- export
-- Keyset pages in key order: `export_<table>` for the first page, `export_<table>_after`
-- for the next ones (row values compare as tuples). :limit rows a page. Flags come out
-- as 0/1 and the driver writes times as ISO text, so an export is the same as SQLite's.

-- name: export_papers
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated::integer AS abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete::integer AS incomplete, refresh_interval, next_refresh_at, incomplete_reason, retracted::integer AS retracted, volume, issue, pages
FROM papers
ORDER BY doi LIMIT :limit;

-- name: export_papers_after
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated::integer AS abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete::integer AS incomplete, refresh_interval, next_refresh_at, incomplete_reason, retracted::integer AS retracted, volume, issue, pages
FROM papers
WHERE doi > :after_doi
ORDER BY doi LIMIT :limit;

-- name: host_book
-- The whole booking in one statement (rules.book_request): the row is made on first use,
-- else its lock serialises concurrent bookings of every process on every machine.
-- :now NULL takes the database's clock (one clock for all machines); `db_now` is the now
-- that was used, so the caller can turn `start` into its own clock.
INSERT INTO hosts AS h (host, next_at, paused_until)
VALUES (:host,
        coalesce(:now::timestamptz, statement_timestamp())
            + make_interval(secs => :delay::double precision),
        coalesce(:now::timestamptz, statement_timestamp()))
ON CONFLICT (host) DO UPDATE SET
    next_at = greatest(h.next_at, h.paused_until,
                       coalesce(:now::timestamptz, statement_timestamp()))
              + make_interval(secs => :delay::double precision)
RETURNING h.next_at - make_interval(secs => :delay::double precision) AS start,
          coalesce(:now::timestamptz, statement_timestamp()) AS db_now;

-- name: host_pause
INSERT INTO hosts AS h (host, next_at, paused_until) VALUES (:host, :now, :until)
ON CONFLICT (host) DO UPDATE SET paused_until = greatest(h.paused_until, excluded.paused_until);

-- name: robots_save
-- A newer fetch wins; an older one (a slower process) does not overwrite it.
INSERT INTO hosts AS h (host, next_at, paused_until, robots_status, robots_text,
                        robots_fetched_at, robots_expires_at, robots_failures)
VALUES (:host, :fetched_at, :fetched_at, :status, :text, :fetched_at, :expires_at, :failures)
ON CONFLICT (host) DO UPDATE SET
    robots_status = excluded.robots_status, robots_text = excluded.robots_text,
    robots_fetched_at = excluded.robots_fetched_at,
    robots_expires_at = excluded.robots_expires_at,
    robots_failures = excluded.robots_failures
WHERE h.robots_fetched_at IS NULL OR h.robots_fetched_at <= excluded.robots_fetched_at;

-- ---------------------------------------------------------------- copy-store
-- `last_<table>`: the highest key (where a resumed copy goes on from);
-- `import_<table>`: one exported row (export's shape: ISO text times, 0/1 flags), kept
-- as it is, ids included; a row already there is left alone, so a copy can resume. The
-- identity sequences are moved past the copied ids by `sync_ids`.

-- name: import_papers
INSERT INTO papers (doi, title, year, publication_date, journal, abstract, abstract_truncated, report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval, next_refresh_at, incomplete_reason, retracted, volume, issue, pages)
VALUES (:doi, :title, :year, :publication_date, :journal, :abstract, :abstract_truncated::integer::boolean, :report_url, :first_seen_at::text::timestamptz, :last_crawled_at::text::timestamptz, :incomplete::integer::boolean, :refresh_interval, :next_refresh_at::text::timestamptz, :incomplete_reason, :retracted::integer::boolean, :volume, :issue, :pages)
ON CONFLICT DO NOTHING;

-- name: import_tallies
INSERT INTO tallies (doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at, source, api_statements)
VALUES (:doi, :supporting, :mentioning, :contrasting, :citing_publications, :citation_statements, :references_count, :observed_at::text::timestamptz, :source, :api_statements)
ON CONFLICT DO NOTHING;

-- name: import_tally_history
INSERT INTO tally_history (id, doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at)
VALUES (:id, :doi, :supporting, :mentioning, :contrasting, :citing_publications, :citation_statements, :references_count, :observed_at::text::timestamptz)
ON CONFLICT DO NOTHING;

-- name: import_statements
INSERT INTO statements (id, cited_doi, citing_doi, snippet, snippet_hash, section, type, confidence, first_seen_at, last_seen_at)
VALUES (:id, :cited_doi, :citing_doi, :snippet, :snippet_hash, :section, :type, :confidence, :first_seen_at::text::timestamptz, :last_seen_at::text::timestamptz)
ON CONFLICT DO NOTHING;

-- name: import_jobs
INSERT INTO jobs (id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted, batch)
VALUES (:id, :doi, :url, :page, :state, :attempts, :not_before::text::timestamptz, :lease_until::text::timestamptz, :last_error, :depth, :created_at::text::timestamptz, :updated_at::text::timestamptz, :round, :worker, :etag, :last_modified, :content_hash, :next_url, :chain, :page_statements, :page_counted, :batch)
ON CONFLICT DO NOTHING;

-- name: sync_ids
SELECT setval(pg_get_serial_sequence('tally_history', 'id'),
              coalesce((SELECT max(id) FROM tally_history), 0) + 1, false),
       setval(pg_get_serial_sequence('statements', 'id'),
              coalesce((SELECT max(id) FROM statements), 0) + 1, false),
       setval(pg_get_serial_sequence('jobs', 'id'),
              coalesce((SELECT max(id) FROM jobs), 0) + 1, false);

-- ---------------------------------------------------------------- kept pages

-- name: forget_broken_page
DELETE FROM pages WHERE doi = :doi AND page = :page AND broken;

-- name: kept_pages
SELECT p.doi, p.page, p.url AS page_url, p.fetched_at, p.broken, p.error, p.body,
       p.media_type, p.charset,
       j.id, j.url, j.attempts, j.depth, j.round, j.etag, j.last_modified, j.content_hash,
       j.next_url, j.chain, j.page_statements, j.page_counted, j.batch, j.state
FROM pages AS p
JOIN jobs AS j ON j.doi = p.doi AND j.page = p.page
WHERE (p.doi, p.page) > (:after_doi::text, :after_page::integer)
  AND (NOT :broken_only::boolean OR p.broken)
  AND (:dois::text[] IS NULL OR p.doi = ANY(:dois::text[]))
ORDER BY p.doi, p.page
LIMIT :limit;

-- ---------------------------------------------------------------- show and search

-- name: search_statements
-- websearch_to_tsquery: words, "phrases", OR, -word; best first (ts_rank, higher better).
WITH q AS (SELECT websearch_to_tsquery('english'::regconfig, :query::text) AS query)
SELECT s.id, s.cited_doi, s.citing_doi, s.type, s.section, s.snippet,
       ts_headline('english'::regconfig, s.snippet, q.query,
                   'StartSel=[, StopSel=], HighlightAll=true') AS highlighted,
       ts_headline('english'::regconfig, s.snippet, q.query,
                   'StartSel=[, StopSel=], MaxWords=32, MinWords=16') AS excerpt,
       -ts_rank(to_tsvector('english'::regconfig, s.snippet), q.query) AS rank
FROM statements AS s, q
WHERE to_tsvector('english'::regconfig, s.snippet) @@ q.query
  AND (:type::text IS NULL OR s.type = :type::text)
ORDER BY rank, s.id
LIMIT :limit;

-- name: settle_reparsed
UPDATE papers SET incomplete = false, incomplete_reason = NULL
WHERE doi = ANY(:dois::text[]) AND incomplete AND incomplete_reason LIKE 'dead page:%'
  AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.doi = papers.doi AND jobs.state = 'dead');

-- ---------------------------------------------------------------- changes and digests
-- `citepipe changes` and the digest of `--digest`/`--notify` (ops/changes.py, migration
-- 10). A window is [:since, :until], both included; :dois narrows it to these cited
-- papers, or NULL for all.

-- name: run_record
-- One run, finished or not, with the pages it fetched (its summary's `pages`).
SELECT id, kind, started_at, finished_at, coalesce((summary::jsonb ->> 'pages')::bigint, 0) AS pages
FROM runs WHERE id = :id;

-- name: last_fetching_run
-- The latest finished run of these kinds that fetched anything: `changes` without --since.
SELECT id, kind, started_at, finished_at, coalesce((summary::jsonb ->> 'pages')::bigint, 0) AS pages
FROM runs
WHERE finished_at IS NOT NULL AND kind = ANY(:kinds::text[]) AND coalesce((summary::jsonb ->> 'pages')::bigint, 0) > 0
ORDER BY finished_at DESC, id DESC
LIMIT 1;

-- name: changes_statements
-- Statements first seen in the window, with the citer's title where known.
SELECT s.cited_doi, s.citing_doi, c.title AS citing_title, s.type, s.section,
       s.confidence, s.snippet
FROM statements AS s LEFT JOIN papers AS c ON c.doi = s.citing_doi
WHERE s.first_seen_at >= :since AND s.first_seen_at <= :until
  AND (:dois::text[] IS NULL OR s.cited_doi = ANY(:dois::text[]))
ORDER BY s.cited_doi, s.id;

-- name: changes_tallies_after
-- Each paper's last tally history row inside the window (rows are written when tallies
-- move, and at a report's first visit).
SELECT h.doi, h.supporting, h.mentioning, h.contrasting
FROM tally_history AS h
WHERE h.observed_at >= :since AND h.observed_at <= :until
  AND (:dois::text[] IS NULL OR h.doi = ANY(:dois::text[]))
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
  AND (:dois::text[] IS NULL OR doi = ANY(:dois::text[]))
ORDER BY doi, date, status, notice_doi;

-- name: changes_titles
SELECT doi, title FROM papers WHERE doi = ANY(:dois::text[]);

-- name: digest_claim
-- Take these runs' digests in hand for sending: a run never recorded, or one whose
-- sending failed. Returns the runs taken (a run sent, empty or being sent is not).
INSERT INTO digests AS d (run_id, state, attempts, updated_at)
SELECT r, 'sending', 0, :now::timestamptz FROM unnest(:run_ids::bigint[]) AS r
ON CONFLICT (run_id) DO UPDATE SET state = 'sending', updated_at = excluded.updated_at
WHERE d.state = 'failed'
RETURNING run_id;

-- name: digest_settle
-- How the sending of digests taken in hand ended: sent, empty or failed.
UPDATE digests
SET state = :state::text, attempts = attempts + :attempts::integer, last_error = :error::text,
    sent_at = CASE WHEN :state::text = 'sent' THEN :now::timestamptz ELSE sent_at END, updated_at = :now::timestamptz
WHERE run_id = ANY(:run_ids::bigint[]) AND state = 'sending';

-- ---------------------------------------------------------------- provenance (migration 8)

-- name: provenance_seed
-- An input DOI is its own seed, at depth 0 (written with its job).
INSERT INTO provenance (doi, seed, depth) VALUES (:doi::text, :doi::text, 0)
ON CONFLICT (doi, seed) DO UPDATE SET depth = 0 WHERE provenance.depth > 0;

-- name: provenance_reach
-- A citing paper named on a report's page: the report's seeds, one citing step further;
-- the fewest steps are kept. A report without provenance (crawled before it was kept,
-- or by a refresh) passes none on.
INSERT INTO provenance (doi, seed, depth)
SELECT :doi::text, seed, depth + 1 FROM provenance WHERE doi = :via::text ORDER BY seed
ON CONFLICT (doi, seed) DO UPDATE SET depth = excluded.depth
WHERE excluded.depth < provenance.depth;

-- name: upsert_api_paper
-- A paper's metadata from the API fills what the store lacks (a report page's header is
-- better: it is never overwritten); `retracted`, `volume`, `issue` and `pages` are the
-- API's alone (no report page shows them): its latest known value is taken.
INSERT INTO papers (doi, title, year, journal, abstract, retracted, volume, issue, pages, first_seen_at)
VALUES (:doi, :title, :year, :journal, :abstract, :retracted::boolean, :volume, :issue, :pages, :now)
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
VALUES (:doi, :status, :date, :notice_doi, :url, :first_seen_at::text::timestamptz, :last_seen_at::text::timestamptz)
ON CONFLICT DO NOTHING;

-- name: export_pages
-- Kept pages (`copy-store` only: bodies are zlib bytes, not for a CSV).
SELECT doi, page, url, fetched_at, broken::integer AS broken, error, size, body, media_type, charset
FROM pages
ORDER BY doi, page LIMIT :limit;

-- name: export_pages_after
SELECT doi, page, url, fetched_at, broken::integer AS broken, error, size, body, media_type, charset
FROM pages
WHERE (doi, page) > (:after_doi, :after_page)
ORDER BY doi, page LIMIT :limit;

-- ---------------------------------------------------------------- politeness (hosts)

-- name: import_pages
INSERT INTO pages (doi, page, url, fetched_at, broken, error, size, body, media_type, charset)
VALUES (:doi, :page, :url, :fetched_at::text::timestamptz, :broken::integer::boolean, :error, :size, :body, :media_type, :charset)
ON CONFLICT DO NOTHING;

-- name: completeness_baseline
-- As SQLite's: a paper incomplete without any history row gets its state as of its last
-- crawl, before a crawl's writes.
INSERT INTO completeness_history (doi, incomplete, reason, changed_at)
SELECT p.doi, true, p.incomplete_reason, coalesce(p.last_crawled_at, p.first_seen_at)
FROM papers AS p
WHERE p.doi = :doi::text AND p.incomplete
  AND NOT EXISTS (SELECT 1 FROM completeness_history AS h WHERE h.doi = p.doi);

-- name: completeness_snapshot
-- As SQLite's: a history row when a report's completeness (incomplete or not, the
-- reason's kind) differs from its last row.
INSERT INTO completeness_history (doi, incomplete, reason, changed_at)
SELECT p.doi, p.incomplete, p.incomplete_reason, :now::timestamptz
FROM papers AS p
WHERE p.doi = :doi::text
  AND coalesce(
        (SELECT h.incomplete::text || '|' || trim(split_part(coalesce(h.reason, ''), ':', 1))
         FROM completeness_history AS h
         WHERE h.doi = p.doi ORDER BY h.id DESC LIMIT 1),
        'false|'
      ) <> p.incomplete::text || '|' || trim(split_part(coalesce(p.incomplete_reason, ''), ':', 1));

-- name: changes_completeness
-- As SQLite's.
SELECT a.doi, a.incomplete::integer AS after_incomplete, a.reason AS after_reason,
       b.incomplete::integer AS before_incomplete, b.reason AS before_reason
FROM completeness_history AS a
LEFT JOIN completeness_history AS b ON b.id = (
    SELECT max(e.id) FROM completeness_history AS e
    WHERE e.doi = a.doi AND e.changed_at < :since
)
WHERE a.changed_at >= :since AND a.changed_at <= :until
  AND (:dois::text[] IS NULL OR a.doi = ANY(:dois::text[]))
  AND a.id = (
      SELECT max(l.id) FROM completeness_history AS l
      WHERE l.doi = a.doi AND l.changed_at >= :since AND l.changed_at <= :until
  )
ORDER BY a.doi;
