"""The SQL files of the store, loaded once: named queries and numbered migrations.

`sql/common/queries.sql` holds the named queries every dialect runs as they are; each
dialect has a folder `sql/<dialect>/` (`sqlite`, `postgres`) holding its own `queries.sql`
(what it writes differently, or alone) and migrations named `NNNN_<what>.sql`, applied in
number order (procrastinate's layout). A dialect's queries are the common ones overlaid by
its own, and a name lives in one file only, so a portable query is written once. Both
kinds of file are a sequence of blocks, each starting with a line `-- name: <name>`; a
block is exactly one statement. In a migration the blocks run in file order, in one
transaction. Splitting on these marker lines needs no SQL parser, so this loader knows
nothing about any dialect (a trigger's inner `;` is no problem either). See docs/store.md.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable

from pipeline.errors import StoreError

DEFAULT_DIALECT = "sqlite"
COMMON = "common"  # the folder of the queries every dialect shares
_NAME_RE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)
_MIGRATION_RE = re.compile(r"^(\d{4})_(\w+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One forward migration: its number, name and statements (run in one transaction)."""

    version: int
    name: str
    statements: tuple[str, ...]


def _dialect_dir(dialect: str) -> Traversable:
    return files("pipeline.store").joinpath("sql", dialect)


def parse_queries(text: str) -> dict[str, str]:
    """Split a file of `-- name:` blocks into {name: sql}, in file order.

    Text before the first marker is a header comment; it must hold no SQL.
    """
    parts = _NAME_RE.split(text)
    if _has_code(parts[0]):
        raise StoreError(f"SQL before the first '-- name:' line: {parts[0].strip()[:80]!r}")
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise StoreError(f"query {name!r} defined twice")
        if not _has_code(body):
            raise StoreError(f"query {name!r} is empty")
        queries[name] = body.strip()
    return queries


def _has_code(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


def _read_queries(folder: str) -> dict[str, str]:
    text = _dialect_dir(folder).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


@cache
def queries(dialect: str = DEFAULT_DIALECT) -> dict[str, str]:
    """The named queries of a dialect: `sql/common/queries.sql` overlaid by
    `sql/<dialect>/queries.sql` (`overlay`)."""
    common = _read_queries(COMMON)
    return common if dialect == COMMON else overlay(common, _read_queries(dialect), dialect)


def overlay(common: dict[str, str], own: dict[str, str], dialect: str) -> dict[str, str]:
    """The common queries and a dialect's own, in one dict. A dialect file that redefines
    a common name is refused: two definitions of one name would let the shared one drift
    unseen, or silently not be the one that runs."""
    again = sorted(set(common) & set(own))
    if again:
        raise StoreError(
            f"sql/{dialect}/queries.sql redefines the common {', '.join(again)}: a query is "
            "defined once; move it out of common/ when its dialects need different SQL"
        )
    return common | own


def parse_migration(version: int, name: str, text: str) -> Migration:
    """A migration file's blocks, in order, as its statements."""
    return Migration(version, name, tuple(parse_queries(text).values()))


@cache
def migrations(dialect: str = DEFAULT_DIALECT) -> tuple[Migration, ...]:
    """The packaged migrations of a dialect, in version order (each number once).

    Numbers may have gaps while parallel changes are merged (a 0004 may land before its
    0003): a store applies every migration it lacks, by number, not only those above its
    highest (`plan_migrations`)."""
    found: list[Migration] = []
    for entry in _dialect_dir(dialect).iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            text = entry.read_text(encoding="utf-8")
            found.append(parse_migration(int(m.group(1)), m.group(2), text))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions) or (versions and versions[0] != 1):
        raise StoreError(f"migrations must start at 1 and use each number once, found {versions}")
    return tuple(found)


def plan_migrations(applied: Collection[int], found: Sequence[Migration]) -> list[Migration]:
    """The migrations a store lacks, in number order: every one whose number is not
    applied, not only those above the highest applied (numbers may have gaps while
    parallel changes are merged: a 0003 merged after a 0004 is still applied). A store
    with a higher version than any found was migrated by a newer citepipe: refused, as
    this one would write to a schema it does not know."""
    latest = max((m.version for m in found), default=0)
    if applied and max(applied) > latest:
        raise StoreError(f"database schema version {max(applied)} is newer than this citepipe")
    return sorted((m for m in found if m.version not in applied), key=lambda m: m.version)
