"""The local site's data as it is served: a base mapping plus the changes made live.

`LiveReports` wraps what `CitationSite` was given (a dict, or a lazy `GeneratedReports`)
and overlays `set_report` / `remove_report` (tests, `next_epoch`) without copying the
base, counting a version per DOI so cached pages and ETags change with the data. Kept
apart from `citesite.server` as plain data: it knows nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from citesite.dataset import SiteReport, demo_dataset_path, iter_dataset
from citesite.generator import GeneratedReports


class LiveReports(Mapping[str, SiteReport]):
    """The site's data: a base mapping (dict or GeneratedReports) plus live changes."""

    def __init__(self, base: Mapping[str, SiteReport]) -> None:
        self._base = base
        self._generated = base if isinstance(base, GeneratedReports) else None
        self._over: dict[str, SiteReport] = {}
        self._removed: set[str] = set()
        self._slugs: dict[str, str] = {}
        self.version: dict[str, int] = {}
        if self._generated is None:
            self._slugs = {r.slug: doi for doi, r in base.items()}

    def __getitem__(self, doi: str) -> SiteReport:
        if doi in self._over:
            return self._over[doi]
        if doi in self._removed:
            raise KeyError(doi)
        return self._base[doi]

    def get_report(self, doi: str) -> SiteReport | None:
        try:
            return self[doi]
        except KeyError:
            return None

    def __iter__(self) -> Iterator[str]:
        for doi in self._base:
            if doi not in self._removed and doi not in self._over:
                yield doi
        yield from self._over

    def __len__(self) -> int:
        # removed and overridden DOIs never overlap: put() and remove() keep them apart
        removed = sum(1 for d in self._removed if d in self._base)
        return len(self._base) - removed + sum(1 for d in self._over if d not in self._base)

    def by_slug(self, slug: str) -> SiteReport | None:
        doi = self._slugs.get(slug)
        if doi is not None:
            report = self.get_report(doi)
            if report is not None and report.slug == slug:
                return report
        if self._generated is not None:
            report = self._generated.by_slug(slug)
            if (
                report is not None
                and report.doi not in self._removed
                and (report.doi not in self._over)
            ):
                return report
        return None

    def put(self, report: SiteReport) -> None:
        self._removed.discard(report.doi)
        self._over[report.doi] = report
        self._slugs[report.slug] = report.doi
        self.version[report.doi] = self.version.get(report.doi, 0) + 1

    def remove(self, doi: str) -> bool:
        present = self.get_report(doi) is not None
        self._over.pop(doi, None)
        self._removed.add(doi)
        self.version[doi] = self.version.get(doi, 0) + 1
        return present


def as_mapping(
    reports: Mapping[str, SiteReport] | Iterable[SiteReport] | None,
) -> Mapping[str, SiteReport]:
    if reports is None:
        return {r.doi: r for r in iter_dataset(demo_dataset_path())}
    if isinstance(reports, Mapping):
        return reports
    return {r.doi: r for r in reports}
