"""One command's run: backfill, crawl, worker, schedule (`commands`) and demo (`demo`).

`lifecycle` holds what every run shares (stop requests, enqueueing an input, heartbeats,
reclaiming leases, the work phase); `processes` the `--processes N` helpers; `inputs` DOI
lists; `progress` the bar; `summary` the printed summary and the one exit-code rule.
"""
