"""Files a command writes (`export -o`, Parquet, Datasette metadata): never half written,
never the store.

`replacing(path)` hands out a hidden file beside the target (`.NAME.partial`) and renames
it over the target only once everything is written and flushed to disk, so an interrupted
or failed write (Ctrl-C, a full disk) leaves the old file exactly as it was and no partial
file behind. A device or a pipe (`/dev/stdout`, a FIFO) cannot be replaced by a file, so it
is written directly.

`refuse_store(output, db)` refuses, before anything is opened or written, an output that
is the SQLite store itself or one of its companions (`-wal`, `-shm`, `-journal`): by
resolved path (symbolic links, `..`) and by inode (hard links).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.store.sqlite_file import sqlite_path

STORE_COMPANIONS = ("", "-wal", "-shm", "-journal")  # SQLite's files of one store


def refuse_store(output: str | os.PathLike[str], db: str) -> None:
    """ConfigError (exit 2) when `output` names the store at `db` or a file SQLite keeps
    beside it; nothing for a PostgreSQL store, which has no file to overwrite."""
    store = sqlite_path(db)
    if store is None or store == ":memory:":
        return
    out = Path(output)
    for suffix in STORE_COMPANIONS:
        companion = Path(store + suffix)
        if out.resolve() == companion.resolve() or _same_file(out, companion):
            raise ConfigError(
                f"--output {output}: that is the store {store}"
                f"{' (its ' + suffix.lstrip('-') + ' file)' if suffix else ''}; "
                "choose another file"
            )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def partial_path(path: Path) -> Path:
    """Where `replacing` writes before the rename: a hidden file in the same folder."""
    return path.with_name(f".{path.name}.partial")


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """The file to write for `path`: a partial file beside it, renamed over `path` when
    the block ends normally (after an fsync), removed when it raises (anything, Ctrl-C
    included), so `path` is either the old file or the complete new one. A device or a
    pipe is yielded itself: it is written directly, never replaced."""
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    if path.exists() and not path.is_file():
        yield path
        return
    target = partial_path(path)
    try:
        yield target
        with open(target, "rb+") as f:  # what was written is on disk before it counts
            os.fsync(f.fileno())
        if path.exists():  # the new file keeps the old one's permissions
            os.chmod(target, path.stat().st_mode & 0o7777)
        target.replace(path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
