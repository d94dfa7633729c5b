-- Migration 1 (SQLite): the initial schema. One statement per `-- name:` block.
--
-- Table and column names of store.md are a public interface (users read this file with
-- sqlite3, pandas, Datasette, DuckDB): add, never rename. Timestamps are UTC ISO 8601
-- strings of one fixed shape (YYYY-MM-DDTHH:MM:SS.ffffffZ), written and read by the driver
-- (sqlite.py), so that text order is time order in this dialect's SQL.
-- Unknown counts are NULL, never 0.

-- name: create_papers
CREATE TABLE papers (
    doi                 TEXT PRIMARY KEY,
    title               TEXT,
    year                INTEGER,
    publication_date    TEXT,
    journal             TEXT,
    abstract            TEXT,
    abstract_truncated  INTEGER CHECK (abstract_truncated IN (0, 1)),
    report_url          TEXT,
    first_seen_at       TEXT NOT NULL,
    last_crawled_at     TEXT,                       -- NULL until its own report was read
    incomplete          INTEGER NOT NULL DEFAULT 0 CHECK (incomplete IN (0, 1)),
    refresh_interval    REAL,                       -- seconds; adaptive
    next_refresh_at     TEXT
);
-- name: index_papers_due_refresh
CREATE INDEX papers_due_refresh ON papers (next_refresh_at)
    WHERE last_crawled_at IS NOT NULL;

-- name: create_authors
CREATE TABLE authors (
    doi       TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    position  INTEGER NOT NULL CHECK (position >= 1),
    name      TEXT NOT NULL,
    PRIMARY KEY (doi, position)
);

-- name: create_tallies
CREATE TABLE tallies (
    doi                  TEXT PRIMARY KEY REFERENCES papers (doi) ON DELETE CASCADE,
    supporting           INTEGER CHECK (supporting >= 0),
    mentioning           INTEGER CHECK (mentioning >= 0),
    contrasting          INTEGER CHECK (contrasting >= 0),
    citing_publications  INTEGER CHECK (citing_publications >= 0),
    citation_statements  INTEGER CHECK (citation_statements >= 0),
    references_count     INTEGER CHECK (references_count >= 0),
    observed_at          TEXT NOT NULL
);

-- name: create_tally_history
CREATE TABLE tally_history (
    id                   INTEGER PRIMARY KEY,
    doi                  TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    supporting           INTEGER,
    mentioning           INTEGER,
    contrasting          INTEGER,
    citing_publications  INTEGER,
    citation_statements  INTEGER,
    references_count     INTEGER,
    observed_at          TEXT NOT NULL
);
-- name: index_tally_history_by_doi
CREATE INDEX tally_history_by_doi ON tally_history (doi, observed_at);

-- name: create_facets
CREATE TABLE facets (
    doi    TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    facet  TEXT NOT NULL,
    label  TEXT NOT NULL,
    count  INTEGER CHECK (count >= 0),
    PRIMARY KEY (doi, facet, label)
);

-- name: create_statements
CREATE TABLE statements (
    id             INTEGER PRIMARY KEY,
    cited_doi      TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    citing_doi     TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    snippet        TEXT NOT NULL CHECK (snippet <> ''),
    snippet_hash   TEXT NOT NULL,
    section        TEXT,
    type           TEXT CHECK (type IN ('supporting', 'mentioning', 'contrasting')),
    confidence     REAL CHECK (confidence BETWEEN 0 AND 1),
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    CONSTRAINT statements_identity UNIQUE (cited_doi, citing_doi, snippet_hash)
);
-- name: index_statements_by_citing
-- statements by cited_doi: served by the leading column of statements_identity.
CREATE INDEX statements_by_citing ON statements (citing_doi);

-- name: create_jobs
CREATE TABLE jobs (
    id             INTEGER PRIMARY KEY,
    doi            TEXT NOT NULL,
    url            TEXT NOT NULL,
    page           INTEGER NOT NULL CHECK (page >= 1),
    state          TEXT NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'leased', 'done', 'failed', 'dead')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    not_before     TEXT NOT NULL,                   -- earliest run time; set at enqueue
    lease_until    TEXT,
    last_error     TEXT,
    depth          INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    round          INTEGER NOT NULL DEFAULT 0,
    worker         TEXT,
    etag           TEXT,
    last_modified  TEXT,
    content_hash   TEXT,
    next_url       TEXT,                            -- next page link last seen
    CONSTRAINT jobs_identity UNIQUE (doi, page)
);
-- name: index_jobs_due
-- claim: the due jobs in order, without visiting finished ones (cost independent of size).
CREATE INDEX jobs_due ON jobs (not_before, id) WHERE state IN ('queued', 'failed');
-- name: index_jobs_leases
-- requeue_expired: only leased jobs.
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE state = 'leased';
-- name: index_jobs_by_state
-- status: counts by state, pages done in the last minute/hour, dead reasons.
CREATE INDEX jobs_by_state ON jobs (state, updated_at);

-- name: create_runs
CREATE TABLE runs (
    id            INTEGER PRIMARY KEY,
    kind          TEXT NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER NOT NULL,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL,
    finished_at   TEXT,
    summary       TEXT                              -- JSON
);
