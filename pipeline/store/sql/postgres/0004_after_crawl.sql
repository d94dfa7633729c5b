-- Migration 4 (PostgreSQL): after the crawl, as SQLite's migration 4. Kept pages (for
-- `citepipe reparse`), full-text search over statement snippets, the `citations` view.
-- Search is PostgreSQL's own: a GIN index on the snippet's tsvector (maintained by the
-- index itself, no trigger), queried with websearch_to_tsquery. See docs/store-postgres.md.

-- name: create_pages
CREATE TABLE pages (
    doi         text COLLATE "C" NOT NULL,
    page        integer NOT NULL CHECK (page >= 1),
    url         text NOT NULL,                      -- where the body came from
    fetched_at  timestamptz NOT NULL,
    broken      boolean NOT NULL,
    error       text,
    size        integer NOT NULL CHECK (size >= 0),
    body        bytea NOT NULL,                     -- zlib (RFC 1950) of the page's bytes
    PRIMARY KEY (doi, page),
    FOREIGN KEY (doi, page) REFERENCES jobs (doi, page) ON DELETE CASCADE
);
-- name: index_pages_broken
CREATE INDEX pages_broken ON pages (doi, page) WHERE broken;

-- name: index_statements_search
CREATE INDEX statements_search ON statements
    USING gin (to_tsvector('english'::regconfig, snippet));

-- name: create_citations
CREATE VIEW citations AS
SELECT citing_doi,
       cited_doi,
       count(*) AS statements,
       count(*) FILTER (WHERE type = 'supporting') AS supporting,
       count(*) FILTER (WHERE type = 'mentioning') AS mentioning,
       count(*) FILTER (WHERE type = 'contrasting') AS contrasting
FROM statements
GROUP BY citing_doi, cited_doi;
