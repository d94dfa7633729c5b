-- Migration 7 (SQLite): editorial notices (retractions, expressions of concern,
-- corrections), as scite's API reports them for a paper. See docs/store.md, "notices".
-- (Migration 6 is another change's; numbers are applied by what a file lacks.)

-- name: create_notices
-- One row per notice of a paper. `status` as scite writes it ("Retracted", "Has expression
-- of concern", "Withdrawn", "Has erratum", "Has correction"); `date` an ISO date
-- (YYYY-MM-DD) or '' when unknown; `notice_doi` the notice's own DOI or ''. A notice seen
-- again updates `last_seen_at` only: the key is (doi, status, date, notice_doi).
CREATE TABLE notices (
    doi            TEXT NOT NULL REFERENCES papers (doi) ON DELETE CASCADE,
    status         TEXT NOT NULL CHECK (status <> ''),
    date           TEXT NOT NULL DEFAULT '',
    notice_doi     TEXT NOT NULL DEFAULT '',
    url            TEXT,
    first_seen_at  TEXT NOT NULL,
    last_seen_at   TEXT NOT NULL,
    PRIMARY KEY (doi, status, date, notice_doi)
);
-- name: index_notices_first_seen
CREATE INDEX notices_first_seen ON notices (first_seen_at);
