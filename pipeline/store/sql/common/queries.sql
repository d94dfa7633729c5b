-- Named queries that every SQL dialect runs as they are, loaded once. Each starts with
-- `-- name: <name>`. Parameters are named (:name); each driver binds them its own way
-- (SQLite by name, with times as its fixed-shape ISO text; PostgreSQL as $1, $2... with
-- timestamptz). Only portable SQL belongs here: a query one dialect writes differently
-- lives in that dialect's own queries.sql, and the loader refuses a dialect file that
-- redefines a name of this one. See docs/store.md.

-- ---------------------------------------------------------------- queue

-- name: enqueue_bump_round
-- A job still waiting (queued/failed) takes a newer round, so its follow-ups refresh too.
UPDATE jobs SET round = :round, updated_at = :now
WHERE doi = :doi AND page = :page AND state IN ('queued', 'failed') AND round < :round;

-- name: extend_lease
UPDATE jobs SET lease_until = :lease_until, updated_at = :now
WHERE id = :id AND worker = :worker AND state = 'leased';

-- name: stale_page_one
-- Page-1 jobs of reports due for a refresh, with the round to use (the DOI's max + 1).
SELECT j.doi, j.url, j.depth,
       (SELECT max(j2.round) FROM jobs AS j2 WHERE j2.doi = j.doi) + 1 AS round
FROM papers AS p
JOIN jobs AS j ON j.doi = p.doi AND j.page = 1
WHERE p.last_crawled_at IS NOT NULL AND p.next_refresh_at <= :now
ORDER BY p.next_refresh_at, p.doi;

-- name: due_refresh_dois
-- Papers due for a refresh through the API (crawl, source api or both): every paper with
-- a refresh time that has come (a report's visit or, with source api, the API's tallies
-- set it), in DOI order so that the same due papers make the same batches (the same jobs).
-- The partial index papers_next_refresh (migration 13) finds them.
SELECT doi FROM papers
WHERE next_refresh_at IS NOT NULL AND next_refresh_at <= :now
ORDER BY doi;

-- name: batch_round
-- The highest round of any batch job (`api:` keys sort between 'api:' and 'api;'): a
-- refresh queues its batches one round higher, so that a batch already done runs again.
SELECT coalesce(max(round), 0) FROM jobs WHERE doi >= 'api:' AND doi < 'api;';

-- name: pending
SELECT count(*) FROM jobs WHERE state IN ('queued', 'leased', 'failed');

-- name: leased_jobs
-- The jobs leased right now, with who holds them and until when (a rerun reclaims the
-- leases of a run whose process is gone). Only leased rows: the partial index jobs_leases.
SELECT id, doi, url, page, attempts, depth, round, etag, last_modified, content_hash,
       next_url, chain, page_statements, page_counted, batch, worker, lease_until
FROM jobs WHERE state = 'leased'
ORDER BY id;

-- ---------------------------------------------------------------- completion

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
    references_count = excluded.references_count, observed_at = excluded.observed_at,
    source = 'report';

-- name: delete_facets
DELETE FROM facets WHERE doi = :doi;

-- name: insert_facet
INSERT INTO facets (doi, facet, label, count) VALUES (:doi, :facet, :label, :count)
ON CONFLICT (doi, facet, label) DO UPDATE SET count = excluded.count;

-- ---------------------------------------------------------------- status

-- name: jobs_by_state
SELECT state, count(*) FROM jobs GROUP BY state;

-- name: dead_by_reason
SELECT coalesce(last_error, ''), count(*) FROM jobs WHERE state = 'dead'
GROUP BY 1 ORDER BY 2 DESC, 1;

-- name: rows_by_table
SELECT 'papers', count(*) FROM papers
UNION ALL SELECT 'authors', count(*) FROM authors
UNION ALL SELECT 'tallies', count(*) FROM tallies
UNION ALL SELECT 'tally_history', count(*) FROM tally_history
UNION ALL SELECT 'facets', count(*) FROM facets
UNION ALL SELECT 'statements', count(*) FROM statements
UNION ALL SELECT 'notices', count(*) FROM notices
UNION ALL SELECT 'jobs', count(*) FROM jobs
UNION ALL SELECT 'pages', count(*) FROM pages
UNION ALL SELECT 'provenance', count(*) FROM provenance;

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
-- for the next ones (row values compare as tuples). :limit rows a page. A table whose
-- flags or types a dialect must spell out (papers) has its export in the dialect file.

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
SELECT doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at, source, api_statements
FROM tallies
ORDER BY doi LIMIT :limit;

-- name: export_tallies_after
SELECT doi, supporting, mentioning, contrasting, citing_publications, citation_statements, references_count, observed_at, source, api_statements
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
SELECT id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted, batch
FROM jobs
ORDER BY id LIMIT :limit;

-- name: export_jobs_after
SELECT id, doi, url, page, state, attempts, not_before, lease_until, last_error, depth, created_at, updated_at, round, worker, etag, last_modified, content_hash, next_url, chain, page_statements, page_counted, batch
FROM jobs
WHERE id > :after_id
ORDER BY id LIMIT :limit;

-- ---------------------------------------------------------------- politeness (hosts)

-- name: host_paused_until
SELECT paused_until FROM hosts WHERE host = :host;

-- name: robots_load
SELECT robots_status, robots_text, robots_fetched_at, robots_expires_at, robots_failures
FROM hosts WHERE host = :host AND robots_fetched_at IS NOT NULL;

-- ---------------------------------------------------------------- kept pages

-- name: keep_page
INSERT INTO pages (doi, page, url, fetched_at, broken, error, size, body, media_type, charset)
VALUES (:doi, :page, :url, :fetched_at, :broken, :error, :size, :body, :media_type, :charset)
ON CONFLICT (doi, page) DO UPDATE SET
    url = excluded.url, fetched_at = excluded.fetched_at, broken = excluded.broken,
    error = excluded.error, size = excluded.size, body = excluded.body,
    media_type = excluded.media_type, charset = excluded.charset;

-- name: show_paper
SELECT doi, title, year, publication_date, journal, abstract, abstract_truncated,
       report_url, first_seen_at, last_crawled_at, incomplete, refresh_interval,
       next_refresh_at, incomplete_reason
FROM papers WHERE doi = :doi;

-- name: show_authors
SELECT name FROM authors WHERE doi = :doi ORDER BY position;

-- name: show_tallies
SELECT supporting, mentioning, contrasting, citing_publications, citation_statements,
       references_count, observed_at, source, api_statements
FROM tallies WHERE doi = :doi;

-- name: show_collected
-- The statements stored for the paper's report (what completeness compares the counts with).
SELECT count(*) FROM statements WHERE cited_doi = :doi;

-- name: api_completeness
-- status and the summary: papers whose report was read and whose API `total` is known,
-- the statements the API counts for them and those collected (one index look-up a paper:
-- as costly as counting the statements).
SELECT count(*) AS papers, coalesce(sum(t.api_statements), 0) AS counted,
       coalesce(sum((SELECT count(*) FROM statements AS s WHERE s.cited_doi = t.doi)), 0)
           AS collected
FROM tallies AS t JOIN papers AS p ON p.doi = t.doi
WHERE t.api_statements IS NOT NULL AND p.last_crawled_at IS NOT NULL;

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

-- ---------------------------------------------------------------- copy-store
-- `last_<table>`: the highest key (where a resumed copy goes on from); `import_<table>`
-- (where it is portable): one exported row kept as it is; a row already there is left
-- alone, so a copy can resume.

-- name: last_papers
SELECT doi FROM papers ORDER BY doi DESC LIMIT 1;

-- name: last_authors
SELECT doi, position FROM authors ORDER BY doi DESC, position DESC LIMIT 1;

-- name: import_authors
INSERT INTO authors (doi, position, name)
VALUES (:doi, :position, :name)
ON CONFLICT DO NOTHING;

-- name: last_tallies
SELECT doi FROM tallies ORDER BY doi DESC LIMIT 1;

-- name: last_tally_history
SELECT id FROM tally_history ORDER BY id DESC LIMIT 1;

-- name: last_facets
SELECT doi, facet, label FROM facets ORDER BY doi DESC, facet DESC, label DESC LIMIT 1;

-- name: import_facets
INSERT INTO facets (doi, facet, label, count)
VALUES (:doi, :facet, :label, :count)
ON CONFLICT DO NOTHING;

-- name: last_statements
SELECT id FROM statements ORDER BY id DESC LIMIT 1;

-- name: last_jobs
SELECT id FROM jobs ORDER BY id DESC LIMIT 1;

-- name: changes_tallies_before
-- The last tally history row before the window of each paper that has one inside it.
SELECT h.doi, h.supporting, h.mentioning, h.contrasting
FROM tally_history AS h
WHERE h.observed_at < :since
  AND h.doi IN (
      SELECT w.doi FROM tally_history AS w
      WHERE w.observed_at >= :since AND w.observed_at <= :until
  )
  AND NOT EXISTS (
      SELECT 1 FROM tally_history AS l
      WHERE l.doi = h.doi AND l.observed_at < :since
        AND (l.observed_at, l.id) > (h.observed_at, h.id)
  )
ORDER BY h.doi;

-- name: digests_failed
SELECT run_id FROM digests WHERE state = 'failed' ORDER BY run_id;

-- name: digest_record
SELECT run_id, state, attempts, last_error, sent_at FROM digests WHERE run_id = :run_id;

-- name: provenance_all
SELECT doi, seed, depth FROM provenance ORDER BY doi, seed;

-- name: export_provenance
SELECT doi, seed, depth
FROM provenance
ORDER BY doi, seed LIMIT :limit;

-- name: export_provenance_after
SELECT doi, seed, depth
FROM provenance
WHERE (doi, seed) > (:after_doi, :after_seed)
ORDER BY doi, seed LIMIT :limit;

-- name: last_provenance
SELECT doi, seed FROM provenance ORDER BY doi DESC, seed DESC LIMIT 1;

-- name: import_provenance
INSERT INTO provenance (doi, seed, depth)
VALUES (:doi, :seed, :depth)
ON CONFLICT DO NOTHING;

-- name: insert_api_author
-- The API's authors, where the store has none at that position (a report's list wins).
INSERT INTO authors (doi, position, name) VALUES (:doi, :position, :name)
ON CONFLICT (doi, position) DO NOTHING;

-- name: upsert_api_tallies
-- The API's counts; references_count (which only a report page shows) is kept.
INSERT INTO tallies (doi, supporting, mentioning, contrasting, citing_publications,
                     citation_statements, observed_at, source, api_statements)
VALUES (:doi, :supporting, :mentioning, :contrasting, :citing_publications,
        :citation_statements, :observed_at, 'api', :citation_statements)
ON CONFLICT (doi) DO UPDATE SET
    supporting = excluded.supporting, mentioning = excluded.mentioning,
    contrasting = excluded.contrasting, citing_publications = excluded.citing_publications,
    citation_statements = excluded.citation_statements, observed_at = excluded.observed_at,
    source = 'api', api_statements = excluded.api_statements;

-- name: record_api_refresh
-- Source api: the API's tallies set a paper's next refresh (adaptive, as a visit does);
-- last_crawled_at stays the report's own (NULL when no report page was read).
UPDATE papers SET refresh_interval = :refresh_interval, next_refresh_at = :next_refresh_at
WHERE doi = :doi;

-- name: delete_section_facets
DELETE FROM facets WHERE doi = :doi AND facet = 'section';

-- name: upsert_notice
-- A notice seen again updates last_seen_at (and a url it did not have): never a second row.
INSERT INTO notices (doi, status, date, notice_doi, url, first_seen_at, last_seen_at)
VALUES (:doi, :status, :date, :notice_doi, :url, :now, :now)
ON CONFLICT (doi, status, date, notice_doi) DO UPDATE SET
    last_seen_at = excluded.last_seen_at, url = coalesce(excluded.url, notices.url);

-- name: api_not_found
-- A DOI the API has no data for (source api): a dead job, as a report page's 404 leaves,
-- so status, the summary and the exit code count it; a job already there is left alone.
INSERT INTO jobs (doi, url, page, state, attempts, not_before, last_error, created_at,
                  updated_at)
VALUES (:doi, :url, 1, 'dead', 1, :now, 'not found (404)', :now, :now)
ON CONFLICT (doi, page) DO NOTHING;

-- ---------------------------------------------------------------- status

-- name: export_notices
SELECT doi, status, date, notice_doi, url, first_seen_at, last_seen_at
FROM notices
ORDER BY doi, status, date, notice_doi LIMIT :limit;

-- name: export_notices_after
SELECT doi, status, date, notice_doi, url, first_seen_at, last_seen_at
FROM notices
WHERE (doi, status, date, notice_doi) > (:after_doi, :after_status, :after_date, :after_notice_doi)
ORDER BY doi, status, date, notice_doi LIMIT :limit;

-- name: last_notices
SELECT doi, status, date, notice_doi FROM notices
ORDER BY doi DESC, status DESC, date DESC, notice_doi DESC LIMIT 1;

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

-- name: last_pages
SELECT doi, page FROM pages ORDER BY doi DESC, page DESC LIMIT 1;
