"""The store: the crawl's work queue, its results and shared politeness, behind the
`Store` protocol (`base.py`; the contract is docs/store.md).

`open_store` picks the driver from a path or URL; call `open()` on the result (or use it
with `async with`). Drivers are named in `ENGINES` by dotted path and imported only when a
store of theirs is opened, so importing this package (or `pipeline.config`) loads no
database client: a SQLite run never imports asyncpg. `MemoryStore`, `SQLiteStore` and
`PostgresStore` are importable from here all the same, each loaded on first use.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.store.base import EXPORT_TABLES, LeasedJob, Store

if TYPE_CHECKING:
    from pipeline.store.memory import MemoryStore
    from pipeline.store.postgres import PostgresStore
    from pipeline.store.sqlite import SQLiteStore

__all__ = [
    "ENGINES",
    "EXPORT_TABLES",
    "LeasedJob",
    "MemoryStore",
    "PostgresStore",
    "SQLiteStore",
    "Store",
    "open_store",
]

# URL scheme -> the driver class, as "module:Class" ("" is a plain file path)
ENGINES: dict[str, str] = {
    "": "pipeline.store.sqlite:SQLiteStore",
    "sqlite": "pipeline.store.sqlite:SQLiteStore",
    "memory": "pipeline.store.memory:MemoryStore",
    "postgresql": "pipeline.store.postgres:PostgresStore",
    "postgres": "pipeline.store.postgres:PostgresStore",
}
_CLASSES = {path.rsplit(":", 1)[1]: path for path in ENGINES.values()}
POOL_OPTIONS = ("pool_min", "pool_max")  # PostgreSQL's own keywords of `open_store`


def _load(path: str) -> Any:
    """The class named by "module:Class", its module imported now."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def __getattr__(name: str) -> Any:
    """`from pipeline.store import PostgresStore` imports its driver on first use."""
    if name in _CLASSES:
        return _load(_CLASSES[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(
    settings_or_db: Settings | str | os.PathLike[str], *, create: bool = True, **opts: Any
) -> Store:
    """The store for a location: a file path or `sqlite:///path` (SQLAlchemy style:
    `sqlite:////abs/path` is absolute), `memory://` for SQLite's `:memory:` (tests);
    `postgresql://user:pass@host:port/dbname` (or `postgres://`) for PostgreSQL. `opts` go
    to the constructor (`pool_min`/`pool_max` only to PostgreSQL); `create=False` refuses a
    store that does not exist yet. Given `Settings`, the store at `settings.db` built by its
    driver's `from_settings` (`opts`: only `clock`).

    The driver checks the location first (`check_location`), before anything is built,
    opened or written: a SQLite location no run should touch (a directory, another
    program's database, ...) is a `ConfigError` naming `db`."""
    if isinstance(settings_or_db, Settings):
        scheme, driver = _driver(settings_or_db.db)
        if scheme != "memory":
            driver.check_location(settings_or_db.db, create=create)
        return driver.from_settings(settings_or_db, create=create, **opts)  # type: ignore[no-any-return]
    target = os.fspath(settings_or_db)
    scheme, driver = _driver(target)
    pool = {k: opts.pop(k) for k in POOL_OPTIONS if k in opts}
    if scheme == "memory":
        return driver(**opts)  # type: ignore[no-any-return]
    if scheme in ("postgresql", "postgres"):
        driver.check_location(target, create=create)
        return driver(target, create=create, **opts, **pool)  # type: ignore[no-any-return]
    path = target
    if scheme == "sqlite":
        path = target[len("sqlite:///") :] if target.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"bad SQLite URL {target!r}: expected sqlite:///path")
    driver.check_location(path, create=create)
    return driver(path, create=create, **opts)  # type: ignore[no-any-return]


def _driver(location: str) -> tuple[str, Any]:
    """The URL scheme of a location ("" for a file path) and its driver class, imported."""
    scheme = location.split("://", 1)[0].lower() if "://" in location else ""
    engine = ENGINES.get(scheme)
    if engine is None:
        raise StoreError(
            f"unknown store URL scheme {scheme!r}: use a SQLite file path, sqlite:///path "
            "or postgresql://user@host:port/dbname"
        )
    return scheme, _load(engine)
