-- Migration 11 (SQLite): a paper's volume, issue and pages, from scite's API (`/papers`
-- answers `volume`, `issue`, `page`); the report pages do not show them. Text as the API
-- writes them ("12", "Suppl 2", "e1234", "5-9"); NULL unknown. See docs/store.md, "The API".

-- name: add_papers_volume
ALTER TABLE papers ADD COLUMN volume TEXT;

-- name: add_papers_issue
ALTER TABLE papers ADD COLUMN issue TEXT;

-- name: add_papers_pages
-- The API's `page`: a range ("5-9"), one page, or an article number.
ALTER TABLE papers ADD COLUMN pages TEXT;
