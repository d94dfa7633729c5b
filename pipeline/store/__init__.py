"""The store: the crawl's work queue, its results and shared politeness, behind the
`Store` protocol (`base.py`; the contract is docs/store.md).

`open_store` picks the implementation from a path or URL; call `open()` on the result (or
use it with `async with`).
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.errors import StoreError
from pipeline.store.base import EXPORT_TABLES, Store
from pipeline.store.memory import MemoryStore
from pipeline.store.postgres import PostgresStore
from pipeline.store.sqlite import SQLiteStore

__all__ = ["EXPORT_TABLES", "MemoryStore", "PostgresStore", "SQLiteStore", "Store", "open_store"]

POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(url_or_path: str | os.PathLike[str], *, create: bool = True, **opts: Any) -> Store:
    """The store for a location: a file path or `sqlite:///path` (SQLAlchemy style:
    `sqlite:////abs/path` is absolute), `memory://` for SQLite's `:memory:` (tests);
    `postgresql://user:pass@host:port/dbname` (or `postgres://`) for PostgreSQL. `opts` go
    to the constructor (`pool_min`/`pool_max` only to PostgreSQL); `create=False` refuses a
    store that does not exist yet."""
    target = os.fspath(url_or_path)
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    pool = {k: opts.pop(k) for k in ("pool_min", "pool_max") if k in opts}
    if scheme in POSTGRES_SCHEMES:
        return PostgresStore(target, create=create, **opts, **pool)
    if scheme == "memory":
        return MemoryStore(**opts)
    if scheme == "sqlite":
        path = target[len("sqlite:///") :] if target.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"bad SQLite URL {target!r}: expected sqlite:///path")
        return SQLiteStore(path, create=create, **opts)
    if scheme:
        raise StoreError(
            f"unknown store URL scheme {scheme!r}: use a SQLite file path, sqlite:///path "
            "or postgresql://user@host:port/dbname"
        )
    return SQLiteStore(target, create=create, **opts)
