"""The one exception tree of citepipe. Each class's docstring is its default message.

    PipelineError
    ├── ConfigError            a setting is missing or has a bad value
    │   └── UsageError            an argument is bad (a search query): said as it is
    ├── BadInputError          a line of a DOI list is not a DOI
    ├── FetchError             a page could not be fetched
    │   ├── TransientFetchError   worth retrying: timeout, reset, truncated, 408/429/5xx
    │   └── PermanentFetchError   not worth retrying: 404/410, wrong type, too large,
    │                             off-site redirect, redirect loop
    │       └── BatchRejectedError   the API refused a batch as too large (422): split it
    ├── ParseError             a 200 page is not a report (layout drift)
    │   └── BlockedError          ... but a login or captcha wall: the site refuses us
    ├── StoreError             the store failed (driver errors are translated to this)
    │   └── StoreDataError        the store refused a row (a constraint): not worth retrying
    ├── NotFoundError          the store holds no such thing (`show` of an unknown DOI)
    └── NotifyError            a webhook did not take a run's digest (`--notify`)

Driver exceptions (aiohttp, asyncio timeouts, sqlite3, asyncpg) are translated into this tree
at exactly one place each: `fetcher.py` for HTTP, the store implementation for databases.
"""

from __future__ import annotations


class PipelineError(Exception):
    """citepipe failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled with its attributes (`missing`, `wall`, `reason`...): a page parsed in
        a worker process raises its error in this one as it was."""
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(
    cls: type[PipelineError], args: tuple[object, ...], state: dict[str, object]
) -> PipelineError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class ConfigError(PipelineError):
    """A setting is missing or has a bad value."""


class UsageError(ConfigError):
    """An argument of the command has a bad value (exit 2, like a bad setting, but not
    called a configuration error: a malformed search query is no setting)."""


class BadInputError(PipelineError):
    """An input line is not a valid DOI."""


class FetchError(PipelineError):
    """A page could not be fetched."""

    def __init__(
        self,
        message: str | None = None,
        *,
        url: str = "",
        status: int | None = None,
        reason: str = "fetch",
    ) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.reason = reason


class TransientFetchError(FetchError):
    """A page could not be fetched this time; retrying may help."""

    def __init__(
        self,
        message: str | None = None,
        *,
        url: str = "",
        status: int | None = None,
        reason: str = "transient",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status, reason=reason)
        self.retry_after = retry_after


class HostUnreachableError(TransientFetchError):
    """A host gave no answer at all, several times in a row (connection refused, a TLS
    error, a timeout before any response), and none since the run began: the run stops
    working it and its jobs stay queued, unharmed, for the next run."""

    def __init__(self, host: str, cause: str, tries: int, *, url: str = "") -> None:
        super().__init__(
            f"{host} is unreachable: {cause} ({tries} tries, no answer)",
            url=url,
            reason="site unreachable",
        )
        self.host = host
        self.cause = cause
        self.tries = tries


class PermanentFetchError(FetchError):
    """A page cannot be fetched; retrying will not help."""


class BatchRejectedError(PermanentFetchError):
    """The API refused a batch as too large (422): it is split, never sent again whole."""


class ParseError(PipelineError):
    """The page is not a citation report."""

    def __init__(self, message: str | None = None, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = missing


class BlockedError(ParseError):
    """The site answered with a login or captcha wall instead of the report."""

    def __init__(
        self, message: str | None = None, *, wall: str = "wall", missing: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, missing=missing)
        self.wall = wall

    @property
    def reason(self) -> str:
        """The job's reason: `blocked: captcha wall`, `blocked: login wall`."""
        return f"blocked: {self.wall}"


class StoreError(PipelineError):
    """The store failed."""


class StoreDataError(StoreError):
    """The store refused the data (a constraint failed): retrying the same rows cannot
    help, so a job that meets it dies as an internal error (the rows come from our code)."""


class NotFoundError(PipelineError):
    """The store holds no such thing."""


class NotifyError(PipelineError):
    """The webhook did not take the notification."""

    def __init__(self, message: str | None = None, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable
