"""Group commit for completions: many pages per transaction, each caller told of its own.

`complete()` hands a page to one writer task through a bounded queue (back-pressure when
the database is behind) and waits for its future. The writer takes what is queued, up to
`batch` pages, waiting up to `linger` seconds after the first for more, and commits them in
one transaction: a commit costs about as much as a page's rows, so batching is the
speed-up. If a batch fails, its
pages are retried one per transaction, so one bad page (a broken CHECK) does not sink the
others; an error the driver calls fatal for the whole batch (a lock timeout) is not.
Each caller gets the error as the commit raised it: a `StoreError` (the driver translates
its own errors), or a bug in our code as it is, so that it kills the job as an internal
error instead of being retried for ever.

Both drivers use it (SQLite with a 5 ms linger). See docs/store.md, "Completions".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pipeline.errors import StoreError
from pipeline.models import Completion

Commit = Callable[[list[Completion]], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    completion: Completion
    future: asyncio.Future[None]


class CompletionWriter:
    """One writer task committing queued completions in batches (see the module doc)."""

    def __init__(
        self,
        commit: Commit,
        *,
        batch: int,
        queue_size: int,
        fatal: Callable[[Exception], bool] = lambda _: False,
        linger: float = 0.0,
    ) -> None:
        if batch < 1 or queue_size < 1:
            raise StoreError("writer_batch and queue_size must be >= 1")
        self._commit = commit
        self._batch = batch
        self._fatal = fatal
        self._linger = linger
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._closing = False
        self._task = asyncio.create_task(self._loop(), name="store-writer")

    async def stop(self) -> None:
        """Commit what is queued, then end the task."""
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None

    async def submit(self, completion: Completion) -> None:
        """Queue the page; return once it is committed (or raise StoreError)."""
        if self._closing or self._task is None:
            raise StoreError("store is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(completion, future))  # blocks when behind
        await future

    async def _loop(self) -> None:
        """Take what is queued, up to a batch, and what comes within `linger` of the first
        page; commit it; until `stop`."""
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            until = loop.time() + self._linger
            while len(batch) < self._batch:
                if self._queue.empty():
                    wait = until - loop.time()
                    if wait <= 0 or self._closing:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), wait)
                    except TimeoutError:
                        break
                else:
                    item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._commit_batch(batch)
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                _settle(item.future, StoreError("store closed before the page was written"))

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            await self._commit([p.completion for p in batch])
        except Exception as exc:
            error = exc
            if len(batch) == 1 or self._fatal(error):
                for pending in batch:
                    _settle(pending.future, error)
                return
            for pending in batch:  # isolate the bad page(s)
                try:
                    await self._commit([pending.completion])
                except Exception as one:
                    _settle(pending.future, one)
                else:
                    _settle(pending.future, None)
            return
        for pending in batch:
            _settle(pending.future, None)


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve a completion's future unless its caller gave up waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
