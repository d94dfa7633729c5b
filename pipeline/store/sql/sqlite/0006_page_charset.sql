-- Migration 6 (SQLite): a kept page keeps what its Content-Type header said (media type
-- and charset), so that `citepipe reparse` decodes its bytes exactly as the crawl did
-- (pipeline.sources.charset). Pages kept before have NULLs: their encoding comes from a
-- byte order mark or a <meta>, else UTF-8, as it always did.

-- name: pages_media_type
ALTER TABLE pages ADD COLUMN media_type TEXT;
-- name: pages_charset
ALTER TABLE pages ADD COLUMN charset TEXT;
