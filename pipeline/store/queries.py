"""The SQL files of `sql/`, loaded once: named queries and numbered migrations.

`queries.sql` holds blocks that start with `-- name: <name>`; migrations are files named
`NNNN_<what>.sql`, applied in number order (procrastinate's layout). Only the SQLite
store reads these; a PostgreSQL store brings its own.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from pipeline.errors import StoreError

_NAME_RE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION_RE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One forward migration: its number, name and statements (run in one transaction)."""

    version: int
    name: str
    statements: tuple[str, ...]


def _read(name: str) -> str:
    return files("pipeline.store").joinpath("sql", name).read_text(encoding="utf-8")


def parse_queries(text: str) -> dict[str, str]:
    """Split a queries file into {name: sql}."""
    parts = _NAME_RE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise StoreError(f"query {name!r} defined twice")
        queries[name] = body.strip()
    return queries


@cache
def queries() -> dict[str, str]:
    """The named queries of `sql/queries.sql`."""
    return parse_queries(_read("queries.sql"))


def split_statements(script: str) -> tuple[str, ...]:
    """Split a script into complete statements (triggers' inner `;` included correctly).

    Needed because `executescript` commits first, which would break a migration's
    transaction.
    """
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            stmt = pending.strip()
            if _has_code(stmt):
                statements.append(stmt)
            pending = ""
    if _has_code(pending):
        raise StoreError(f"incomplete SQL statement: {pending.strip()[:80]!r}")
    return tuple(statements)


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


@cache
def migrations() -> tuple[Migration, ...]:
    """The packaged migrations, in version order."""
    found: list[Migration] = []
    for entry in files("pipeline.store").joinpath("sql").iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            found.append(
                Migration(int(m.group(1)), m.group(2), split_statements(_read(entry.name)))
            )
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise StoreError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return tuple(found)
