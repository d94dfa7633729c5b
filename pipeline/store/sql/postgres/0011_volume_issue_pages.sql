-- Migration 11 (PostgreSQL): a paper's volume, issue and pages from scite's API, as
-- SQLite's migration 11 (docs/store.md, "The API").

-- name: add_papers_volume
ALTER TABLE papers ADD COLUMN volume text;

-- name: add_papers_issue
ALTER TABLE papers ADD COLUMN issue text;

-- name: add_papers_pages
ALTER TABLE papers ADD COLUMN pages text;
