"""The local citation site: serves contract report pages from a data set, with faults.

`dataset` holds the records, JSONL I/O, slugs and DOIs and the ground truth
(`expected_page`, plain data of the site's own); `generator` makes reports (the seeded
generator, the demo set); `render` writes a report page (`markup`: its per-page choices,
`static`: the weight around it and the pages that are no report); `faults` decides which
request gets which fault; `server` runs it (`CitationSite`, `serve_forever`), `answers`
says what an address gets, `live` is the data as served, `cli` is `citepipe site`; `doi`
and `text` are its own DOI, address and text rules. The package imports nothing from the
crawler's package, so a mistake there is not repeated here.
"""

from __future__ import annotations

from citesite.dataset import (
    SiteReport,
    SiteStatement,
    demo_dataset_path,
    expected_page,
    iter_dataset,
    load_dataset,
    page_count,
    page_url,
    write_dataset,
)
from citesite.faults import Fault, FaultSpec, FaultSpecError
from citesite.generator import GeneratedReports, generate
from citesite.render import render_page
from citesite.server import CitationSite, RequestRecord, serve_forever

__all__ = [
    "CitationSite",
    "Fault",
    "FaultSpec",
    "FaultSpecError",
    "GeneratedReports",
    "RequestRecord",
    "SiteReport",
    "SiteStatement",
    "demo_dataset_path",
    "expected_page",
    "generate",
    "iter_dataset",
    "load_dataset",
    "page_count",
    "page_url",
    "render_page",
    "serve_forever",
    "write_dataset",
]
