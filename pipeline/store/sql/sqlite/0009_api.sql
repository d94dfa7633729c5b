-- Migration 9 (SQLite): scite's API as a second source. See docs/store.md, "The API".
-- (Migrations 6 and 8 are other changes'; numbers are applied by what a file lacks.)

-- name: add_jobs_batch
-- A batch job (one API request): the JSON array of its DOIs; NULL for a page job. Its
-- `doi` is its own key, `api:<endpoint>:<digest>`, which no DOI starts with.
ALTER TABLE jobs ADD COLUMN batch TEXT;

-- name: add_tallies_source
-- Where the latest tallies came from: 'api' or 'report' (NULL: written before migration 9).
ALTER TABLE tallies ADD COLUMN source TEXT CHECK (source IN ('api', 'report'));

-- name: add_tallies_api_statements
-- The API's `total` (citation statements), kept when a report page's count replaces
-- citation_statements: what completeness compares the statements collected with.
ALTER TABLE tallies ADD COLUMN api_statements INTEGER CHECK (api_statements >= 0);

-- name: add_papers_retracted
-- 1 retracted, 0 not, NULL unknown (the API's `retracted`).
ALTER TABLE papers ADD COLUMN retracted INTEGER CHECK (retracted IN (0, 1));
