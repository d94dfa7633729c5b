"""After a run: its digest to a file (`--digest FILE`) and to a webhook (`--notify URL`).

`after_run` is called by `crawl`, `backfill` and `worker --burst` once the run's summary
is recorded. Nothing here changes the run's rows or its exit code: a failure is logged
and told in the lines it returns (printed after the summary).

Sending, at most once a run: the run's digest (and those of earlier runs whose sending
failed) is taken in hand in the store first (`claim_digests`), then POSTed with retries
(`ops/notify.py`), then settled as sent or failed. A failed one is sent with the next
`--notify` run's: one message, whose window starts where the oldest unsent run started.
A run with no changes sends nothing unless `notify_empty` is set.
"""

from __future__ import annotations

import structlog

from pipeline.app import Pipeline
from pipeline.errors import PipelineError
from pipeline.logs import redact_url
from pipeline.ops import notify
from pipeline.ops.changes import (
    Digest,
    Window,
    collect,
    headline,
    render_markdown,
    render_text,
    write_output,
)

log = structlog.get_logger("citepipe")


async def after_run(p: Pipeline, run_id: int) -> list[str]:
    """Write and send the finished run's digest as the settings ask; the lines to show."""
    s = p.settings
    if not s.digest and not s.notify_url:
        return []
    lines: list[str] = []
    try:
        run = await p.store.run_record(run_id)
        if run is None or run.finished_at is None:
            raise PipelineError(f"run {run_id} is not recorded as finished")
        window = Window.of_run(run)
        if s.digest:
            digest = await collect(p.store, window)
            lines.append(write_digest(digest, s.digest))
        if s.notify_url:
            lines.append(await send_digest(p, run_id, window))
    except (PipelineError, OSError) as exc:
        log.error("digest failed", run=run_id, error=str(exc))
        lines.append(f"digest: failed ({exc}); the run's data are not affected")
    return lines


def write_digest(digest: Digest, path: str) -> str:
    """The Markdown digest to `path` (written whole, then renamed into place)."""
    write_output(path, render_markdown(digest))
    log.info("digest written", path=path, papers=len(digest.papers))
    return f"digest: {headline(digest)}; written to {path}"


async def send_digest(p: Pipeline, run_id: int, window: Window) -> str:
    """POST the digest of this run (with any earlier unsent ones) to `notify_url`."""
    s, store = p.settings, p.store
    if run_id not in await store.claim_digests([run_id]):  # at most once a run
        return f"notify: run {run_id}'s digest was handled already"
    earlier = [r for r in await store.failed_digests() if r < run_id]
    taken = [*await store.claim_digests(earlier), run_id]
    since = window.since
    for other in earlier:
        record = await store.run_record(other)
        if record is not None and record.started_at < since:
            since = record.started_at
    digest = await collect(store, Window(since, window.until, tuple(taken)))
    shown = redact_url(s.notify_url)
    if digest.empty and not s.notify_empty:
        await store.settle_digests(taken, "empty")
        log.info("nothing changed: no notification", run=run_id, webhook=shown)
        return "notify: nothing changed, nothing sent"
    document = digest.as_json()
    body = notify.body_of(document, render_text(digest), s.notify_format)
    delivery = await notify.post(
        s.notify_url,
        body,
        user_agent=s.user_agent,
        base=s.retry_base,
        cap=s.retry_cap,
        answer_within=s.timeout,
    )
    if delivery.ok:
        await store.settle_digests(taken, "sent", attempts=delivery.attempts)
        log.info("notification sent", run=run_id, runs=taken, webhook=shown)
        return f"notify: {headline(digest)}; sent to {shown}"
    await store.settle_digests(taken, "failed", attempts=delivery.attempts, error=delivery.error)
    log.error(
        "notification failed",
        run=run_id,
        webhook=shown,
        attempts=delivery.attempts,
        error=delivery.error,
    )
    return (
        f"notify: failed after {delivery.attempts} attempts ({delivery.error}); "
        "it is sent with the next run's"
    )
