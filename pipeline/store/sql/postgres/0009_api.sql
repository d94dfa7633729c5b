-- Migration 9 (PostgreSQL): scite's API as a second source, as SQLite's migration 9
-- (docs/store.md, "The API"). (Migrations 6 and 8 are other changes'.)

-- name: add_jobs_batch
ALTER TABLE jobs ADD COLUMN batch text;

-- name: add_tallies_source
ALTER TABLE tallies ADD COLUMN source text CHECK (source IN ('api', 'report'));

-- name: add_tallies_api_statements
ALTER TABLE tallies ADD COLUMN api_statements integer CHECK (api_statements >= 0);

-- name: add_papers_retracted
ALTER TABLE papers ADD COLUMN retracted boolean;
