"""PostgreSQL errors, in one place: every asyncpg error becomes a StoreError
(`db_errors`), and a statement cut by a lost connection runs again (`reconnecting`).

A restart of the server (`pg_ctl restart -m fast`) cuts every session: what was running
fails with one of several asyncpg families (AdminShutdownError, ConnectionDoesNotExistError,
InterfaceError, InternalClientError, a refused connect, CannotConnectNowError while it comes
back), and the pool's connections are dead. The pool replaces a closed connection at the
next acquire, so running the statement again, with backoff, is all recovery needs; a job
never sees a restart that lasts less than RECONNECT_SECONDS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import asyncpg
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from pipeline.errors import StoreDataError, StoreError
from pipeline.logs import get_logger, redact_text

T = TypeVar("T")
# The server went away or is not back yet (a restart, a failover, a cut connection): the
# statement runs again on a fresh connection, with backoff, for up to RECONNECT_SECONDS.
# asyncpg raises any of these families for it, depending on the moment the cut struck.
_CONNECTION_LOST = (
    OSError,  # refused, reset
    asyncpg.PostgresConnectionError,  # ConnectionDoesNotExistError ("closed in the middle")
    asyncpg.exceptions.AdminShutdownError,  # "terminating connection due to administrator"
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,  # "the database system is shutting down"
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.InterfaceError,  # "connection is closed", "another operation is in progress"
    asyncpg.exceptions.InternalClientError,  # "cannot switch to state 12"
)
RECONNECT_SECONDS = 30.0
log = get_logger("citepipe.store")


@contextlib.contextmanager
def db_errors(what: str) -> Iterator[None]:
    """Translate driver errors into StoreError: the one place it is done."""
    try:
        yield
    except StoreError:
        raise
    except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
        raise StoreDataError(redact_text(f"{what}: {exc}")) from exc
    except TimeoutError as exc:  # an OSError too: first
        raise StoreError(f"{what}: the database did not answer in time") from exc
    except (
        asyncpg.PostgresError,  # CannotConnectNowError, connection errors among them
        asyncpg.InterfaceError,
        asyncpg.exceptions.InternalClientError,  # ProtocolError; "cannot switch to state"
        OSError,
    ) as exc:
        raise StoreError(redact_text(f"{what}: {exc}")) from exc


async def reconnecting(what: str, dsn: str, run: Callable[[], Awaitable[T]]) -> T:
    """`run()`, again on a fresh connection while the server is unreachable (up to
    RECONNECT_SECONDS, backoff 0.1 s doubling to 2 s, logged); then a StoreError that
    names the database. What ran when the connection was cut may have committed: every
    store write is safe to repeat (upserts; a claim repeated leases jobs whose lease
    then runs out, and they come back)."""

    def waiting(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "database unreachable; trying again",
            what=what,
            error=redact_text(f"{type(error).__name__}: {error}"),
            attempt=state.attempt_number,
            wait_s=round(state.upcoming_sleep, 2),
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(_CONNECTION_LOST),
        wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1),
        stop=stop_after_delay(RECONNECT_SECONDS),
        before_sleep=waiting,
        reraise=True,
    )
    try:
        with db_errors(what):
            async for attempt in retrying:
                with attempt:
                    result = await run()
            if attempt.retry_state.attempt_number > 1:
                log.info("database reachable again", what=what)
            return result
    except StoreError as exc:
        lost = exc.__cause__
        if isinstance(lost, _CONNECTION_LOST) and not isinstance(lost, TimeoutError):
            raise StoreError(
                f"{what}: the database {redact_text(dsn)} is unreachable "
                f"(still after {RECONNECT_SECONDS:.0f} s): {redact_text(str(lost))}"
            ) from lost
        raise
