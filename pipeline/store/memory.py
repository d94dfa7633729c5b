"""The in-memory store: SQLite's own `:memory:` database, behind the same driver.

Why not a store of dicts: the rules of the store (queue states and transitions, the merge
rule of every column, constraints, all-or-nothing transactions) are SQL in
`sql/sqlite/queries.sql` and the schema. A second, hand-written implementation had to copy
each of them and could drift; SQLite in memory runs the very same statements, costs
nothing to set up, and leaves nothing behind. See docs/store.md.
"""

from __future__ import annotations

from typing import Any, Self

from pipeline.config import Settings
from pipeline.store.sql import store_options
from pipeline.store.sqlite import Clock, SQLiteStore
from pipeline.store.sqlite_file import MEMORY


class MemoryStore(SQLiteStore):
    """`SQLiteStore(":memory:")`: a private database that lives until `close`. Takes the
    same keywords as `SQLiteStore` (the path excepted)."""

    def __init__(self, **opts: Any) -> None:
        super().__init__(MEMORY, **opts)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, create: bool = True, clock: Clock | None = None
    ) -> Self:
        """A private database tuned by the settings (`create` means nothing here)."""
        return cls(clock=clock, **store_options(settings))
