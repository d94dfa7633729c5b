-- Migration 8 (SQLite): provenance, which input DOI(s) brought each paper into a crawl and
-- how many citing steps away (docs/network.md). Numbers 6 and 7 are other changes'
-- (numbers are applied by what a store lacks).
--
-- One row per (paper, seed): a seed has its own row at depth 0 (written with its job,
-- `provenance_seed`); each citing paper a stored page names gets its report's seeds one
-- step further (`provenance_reach`, in the page's own transaction), the fewest steps
-- kept. A paper reached from two seeds has two rows. No foreign key: a seed's row comes
-- before its paper's, with its job.

-- name: create_provenance
CREATE TABLE provenance (
    doi    TEXT NOT NULL,
    seed   TEXT NOT NULL,
    depth  INTEGER NOT NULL CHECK (depth >= 0),
    PRIMARY KEY (doi, seed)
);
