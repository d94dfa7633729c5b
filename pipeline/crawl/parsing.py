"""Where a page is parsed: off the event loop, in a process with a CPU-time and memory budget.

lexbor's tree builder is superlinear on some markup (tens of thousands of unclosed
formatting tags with attributes: every new block clones them all), and no Python code can
interrupt a C call. So the parse runs in a forked worker process (`ProcessBudgetParser`),
where the kernel enforces the budget: `RLIMIT_AS` (address space) caps memory, and
`RLIMIT_CPU`, raised before each page to the CPU time used so far plus the budget, stops
a parse that outruns it (SIGXCPU). The event loop and the lease heartbeat never wait on
a parse, and a page over budget is a broken page (`parse budget exceeded: ...`), kept for
`citepipe reparse` like any other.

A worker process that dies takes the pages it was parsing with it; each is then parsed
again alone, one at a time, so that only the page that broke the budget is blamed.

`ThreadParser` (a thread, no budget) is the seam for tests whose fake sources keep state
in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from pipeline.errors import ParseError
from pipeline.models import Page, ParseResult
from pipeline.sources.base import Source

# `fork`: the child gets the source as it is (no pickling: any Source works) and starts in
# milliseconds; it touches nothing of the parent's but the source (no store, no loop).
_CONTEXT = multiprocessing.get_context("fork")
BUDGET_PREFIX = "parse budget exceeded"


class Parser(Protocol):
    """Parses pages for the worker; raises ParseError for a broken page."""

    async def parse(self, page: Page) -> ParseResult: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ParseBudget:
    """What one page's parse may take: CPU seconds (the kernel counts whole seconds, so a
    parse is stopped between `cpu_seconds` and one second later) and megabytes of memory
    beyond what the worker process holds when it starts."""

    cpu_seconds: float = 5.0
    memory_mb: int = 512

    def over(self, what: str) -> ParseError:
        return ParseError(f"{BUDGET_PREFIX}: {what}")

    @property
    def cpu_text(self) -> str:
        return f"more than {self.cpu_seconds:g} s of CPU time"

    @property
    def memory_text(self) -> str:
        return f"more than {self.memory_mb} MB of memory"


class ThreadParser:
    """`source.parse` on a thread of this process: off the event loop, no budget."""

    def __init__(self, source: Source) -> None:
        self._source = source

    async def parse(self, page: Page) -> ParseResult:
        return await asyncio.to_thread(self._source.parse, page)

    def close(self) -> None:
        return None


class ProcessBudgetParser:
    """`source.parse` in `processes` forked worker processes, each page within `budget`."""

    def __init__(self, source: Source, budget: ParseBudget, processes: int = 0) -> None:
        self._source = source
        self.budget = budget
        self.processes = processes or max(1, min(4, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None
        self._alone = asyncio.Lock()  # pages parsed again after a worker died: one at a time

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=_CONTEXT,
                initializer=_start_child,
                initargs=(self._source, self.budget.memory_mb),
            )
        return self._pool

    async def parse(self, page: Page) -> ParseResult:
        pool = self._executor()
        try:
            future = pool.submit(_parse_in_child, page, self.budget.cpu_seconds)
            result: ParseResult = await asyncio.wrap_future(future)
            return result
        except BrokenProcessPool:
            if self._pool is pool:  # the first page to see it replaces the pool
                self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
            return await self._parse_alone(page)
        except Exception as exc:  # ParseError, or a bug: as raised in the parser process
            raise _local(exc) from None

    async def _parse_alone(self, page: Page) -> ParseResult:
        """The page parsed in a process of its own, so that a death is its own."""
        async with self._alone:
            reader, writer = _CONTEXT.Pipe(duplex=False)
            child = _CONTEXT.Process(
                target=_alone_child,
                args=(self._source, page, self.budget, writer),
                daemon=True,
            )
            child.start()
            writer.close()
            try:
                answer = await asyncio.to_thread(_receive, reader)
                await asyncio.to_thread(child.join)
            finally:
                reader.close()
                if child.is_alive():
                    child.kill()
        if answer is None:  # it died before answering: what stopped it
            if child.exitcode == -signal.SIGXCPU:
                raise self.budget.over(self.budget.cpu_text)
            if child.exitcode == -signal.SIGKILL:  # the kernel's OOM killer, or an operator
                raise self.budget.over(f"{self.budget.memory_text} (the parser was killed)")
            raise self.budget.over(f"the parser process died (exit code {child.exitcode})")
        ok, value = answer
        if ok:
            return value  # type: ignore[no-any-return]
        raise value

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _local(exc: Exception) -> Exception:
    """The error as if raised here: the worker process's traceback (which
    concurrent.futures attaches as the cause) becomes a note, so that a crash logs one
    traceback, this one, with the other process's frames after it."""
    remote = exc.__cause__
    if remote is not None and type(remote).__name__ == "_RemoteTraceback":
        exc.__cause__ = None
        text = str(remote).strip().strip('"').strip()
        exc.add_note(text.replace("Traceback (most recent call last):", "In the parser process:"))
    return exc


def _receive(reader: Connection) -> tuple[bool, Any] | None:
    try:
        answer: tuple[bool, Any] = reader.recv()
    except EOFError:
        return None
    return answer


# ------------------------------------------------------------------- in the child

_source: Source | None = None
_memory_mb = 0


def _start_child(source: Source, memory_mb: int) -> None:
    """A worker process: it dies with its parent, holds none of the parent's standard
    streams, takes none of its signals (a Ctrl-C is for the run to handle), and its
    address space may grow by `memory_mb` at most."""
    global _source, _memory_mb
    _source, _memory_mb = source, memory_mb
    _die_with_parent()
    _let_go_of_std_streams()
    with contextlib.suppress(ValueError, OSError):
        signal.set_wakeup_fd(-1)  # the parent loop's self-pipe: never written from here
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = _vm_size() + memory_mb * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies


def _die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies (Linux's
    PR_SET_PDEATHSIG): a `kill -9` of the run leaves no parser process behind, to keep
    the run's pipes open or its memory. Elsewhere, or if the parent is already gone, the
    check of the parent's pid below is all there is."""
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died between the fork and the prctl
        os._exit(1)


def _let_go_of_std_streams() -> None:
    """Point standard input, output and error at /dev/null: a parser child writes nothing
    (a page's error goes back through its pipe), and holding the parent's stdout or stderr
    would keep a reader of the run's output waiting after the run is gone."""
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)


def _vm_size() -> int:
    """This process's address space in bytes (VmSize)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover


def _arm_cpu(cpu_seconds: float) -> None:
    """Stop this process (SIGXCPU) once this page took `cpu_seconds` of CPU time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + cpu_seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _parse_in_child(page: Page, cpu_seconds: float) -> ParseResult:
    assert _source is not None, "the worker process was not started with a source"
    _arm_cpu(cpu_seconds)
    try:
        return _source.parse(page)
    except MemoryError:
        raise ParseError(f"{BUDGET_PREFIX}: more than {_memory_mb} MB of memory") from None


def _alone_child(source: Source, page: Page, budget: ParseBudget, writer: Connection) -> None:
    _start_child(source, budget.memory_mb)
    try:
        writer.send((True, _parse_in_child(page, budget.cpu_seconds)))
    except Exception as exc:  # a broken page, or a bug: the parent raises it
        writer.send((False, exc))
    finally:
        writer.close()
