-- Migration 6 (PostgreSQL), as SQLite's migration 6: a kept page keeps what its
-- Content-Type header said (media type and charset), so that `citepipe reparse` decodes
-- its bytes exactly as the crawl did. Pages kept before have NULLs.

-- name: pages_media_type
ALTER TABLE pages ADD COLUMN media_type text;
-- name: pages_charset
ALTER TABLE pages ADD COLUMN charset text;
