-- Migration 4 (SQLite): after the crawl. Kept pages (for `citepipe reparse`), full-text
-- search over statement snippets, and the `citations` view. See docs/store.md, "After the
-- crawl". (Migration 3 is another change's; numbers are applied by what a file lacks.)

-- name: create_pages
-- Fetched pages, zlib-compressed, one per job (doi, page): the broken ones always, every
-- page with keep_pages = "all". `reparse` reads them again with the current selectors.
CREATE TABLE pages (
    doi         TEXT NOT NULL,
    page        INTEGER NOT NULL CHECK (page >= 1),
    url         TEXT NOT NULL,                      -- where the body came from
    fetched_at  TEXT NOT NULL,
    broken      INTEGER NOT NULL CHECK (broken IN (0, 1)),
    error       TEXT,                               -- why it did not parse (broken = 1)
    size        INTEGER NOT NULL CHECK (size >= 0), -- bytes before compression
    body        BLOB NOT NULL,                      -- zlib (RFC 1950) of the page's bytes
    PRIMARY KEY (doi, page),
    FOREIGN KEY (doi, page) REFERENCES jobs (doi, page) ON DELETE CASCADE
);
-- name: index_pages_broken
CREATE INDEX pages_broken ON pages (doi, page) WHERE broken = 1;

-- name: create_statements_fts
-- External content (content="statements"): the index holds no second copy of the text.
-- Datasette finds it by `content="statements"`.
CREATE VIRTUAL TABLE statements_fts USING fts5(
    snippet,
    content="statements",
    content_rowid="id",
    tokenize="porter unicode61"
);
-- name: fill_statements_fts
INSERT INTO statements_fts (statements_fts) VALUES ('rebuild');

-- name: create_search_bulk
-- One row. citepipe's writer sets `bulk` to 1 inside its own transaction, indexes that
-- batch's new statements with one INSERT ... SELECT, and sets it back to 0 before the
-- commit, so no other connection ever sees 1: for every other writer (sqlite3, Datasette)
-- the insert trigger indexes each statement. One statement for a batch costs ~4x less CPU
-- than a trigger per row, and holds Python's GIL once instead of once a row.
CREATE TABLE search_bulk (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    bulk  INTEGER NOT NULL CHECK (bulk IN (0, 1))
);
-- name: insert_search_bulk
INSERT INTO search_bulk (id, bulk) VALUES (1, 0);

-- name: trigger_statements_fts_insert
CREATE TRIGGER statements_fts_insert AFTER INSERT ON statements
WHEN (SELECT bulk FROM search_bulk) = 0
BEGIN
    INSERT INTO statements_fts (rowid, snippet) VALUES (new.id, new.snippet);
END;
-- name: trigger_statements_fts_delete
CREATE TRIGGER statements_fts_delete AFTER DELETE ON statements BEGIN
    INSERT INTO statements_fts (statements_fts, rowid, snippet)
    VALUES ('delete', old.id, old.snippet);
END;
-- name: trigger_statements_fts_update
-- Only an UPDATE naming `snippet` fires it: the store's upsert of a statement seen again
-- sets other columns, so a refresh costs the index nothing.
CREATE TRIGGER statements_fts_update AFTER UPDATE OF snippet ON statements BEGIN
    INSERT INTO statements_fts (statements_fts, rowid, snippet)
    VALUES ('delete', old.id, old.snippet);
    INSERT INTO statements_fts (rowid, snippet) VALUES (new.id, new.snippet);
END;

-- name: create_citations
-- Who cites whom: one row per (citing, cited) pair, its statements counted by type.
CREATE VIEW citations AS
SELECT citing_doi,
       cited_doi,
       count(*) AS statements,
       sum(type = 'supporting') AS supporting,
       sum(type = 'mentioning') AS mentioning,
       sum(type = 'contrasting') AS contrasting
FROM statements
GROUP BY citing_doi, cited_doi;
