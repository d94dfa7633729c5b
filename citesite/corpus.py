"""Real texts for the local citation site: titles, abstracts, snippets and sections.

Everything comes from `data/real-reports.jsonl` (37 real report pages, shipped in the
package) plus small pools of names and journals; the generator and the demo builder draw
from here so generated pages read like real ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from citesite.text import clean_text

DATA_DIR = Path(__file__).with_name("data")
REAL_REPORTS_PATH = DATA_DIR / "real-reports.jsonl"

_TAG_RE = re.compile(r"<[^>]+>")
_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")
_QUOTES = "\u201c\u201d\u201e\u00ab\u00bb\"'\u2018\u2019"

# The three statements of the sample seed page that are not in the real data set.
SAMPLE_SNIPPETS: tuple[str, ...] = (
    "…Initially three reports appeared in the same year; one with two patients who failed to "
    "respond to autologous bone marrow derived MSC clinically despite an increase in "
    "circulating Treg cells [16] and two other reports, both from the same centre, showing "
    "clinical improvement in 15 patients treated with allogeneic bone marrow derived MSC [17] "
    "and also in 16 similar patients who had received allogeneic umbilical derived MSC [18]. "
    "Further reports from the same centre showed improvement in four SLE patients with "
    "pulmonary haemorrhage [19] using umbilical cord derived MSC and 35 with refractory "
    "cytopenias [20] using either allogeneic bone marrow or umbilical cord MSC. Between 2012 "
    "and 2014 the same group has published 4 further SLE case series, 87 clinically "
    "heterogenoeus patients [21], 58 refractory nephritis patients [22], 40 mostly refractory "
    "nephritis patients [23] and a further 81 refractory nephritis patients [24].…",
    "…After 3 d of culture, nonadherent cells were removed and the medium was changed twice "
    "weekly thereafter. Once 80% confluence was reached, adherent cells were replaced at a "
    "density of 104 cells/cm2 for expansion (26,29).…",
    "…We and others have shown that lupus BMMSCs grow slowly with early signs of senescence, "
    "and exhibit some disorders in cytoskeleton and ultrastructure (23)(24)(25). In addition, "
    "accumulating evidence has indicated that allogeneic normal MSCs, rather than autologous "
    "MSC transplantation (MSCT), are more effective in treating lupus in preclinical animal "
    "studies and SLE patients (26)(27)(28)(29), which suggests that lupus MSCs have a "
    "deficiency in suppressing SLE inflammation. However, whether lupus MSCs are functionally "
    "impaired in inhibiting normal B cells remains elusive.…",
)

EXTRA_SECTIONS: tuple[str, ...] = (
    "Introduction",
    "Introduction",
    "Discussion",
    "Discussion",
    "Methods",
    "Results",
    "Background",
    "Conclusions",
    "Limitations",
    "Materials and Methods",
    "Introduction Introduction",
    "Statistical Analysis",
    "Study Design and Participants",
)

SURNAMES: tuple[str, ...] = (
    "Li",
    "Wang",
    "Zhang",
    "Liu",
    "Chen",
    "Smith",
    "García",
    "Müller",
    "Nguyen",
    "Kim",
    "Rossi",
    "Santos",
    "Kowalski",
    "O'Brien",
    "Rodríguez-Urrego",
    "Okafor",
    "Novák",
    "Johansson",
    "Ødegaard",
    "Yilmaz",
    "Tanaka",
    "Sato",
    "Haddad",
    "Patel",
    "Singh",
    "Ahmed",
    "Dubois",
    "Lefèvre",
    "Costa",
    "Ivanova",
    "Papadopoulos",
    "Bianchi",
    "Moreau",
    "Schneider",
    "Kaur",
    "Hernández",
    "da Silva",
    "van der Berg",
    "MacLeod",
    "Nakamura",
)
INITIALS = "ABCDEFGHJKLMNPRSTWXYZ"

JOURNALS: tuple[str, ...] = (
    "Bone Marrow Transplantation",
    "Stem Cell Reviews",
    "Journal of Immunology",
    "Brain, Behavior, and Immunity",
    "Frontiers in Psychiatry",
    "PLOS ONE",
    "Environmental Science & Technology Letters",
    "Journal of Affective Disorders",
    "Sleep Medicine",
    "International Journal of Environmental Research and Public Health",
    "Science of The Total Environment",
    "BMJ Open",
    "The Lancet Psychiatry",
    "Arthritis Research & Therapy",
    "Psychiatry Research",
    "Nutrients",
    "Cureus",
    "Environmental Pollution",
    "Journal of Clinical Medicine",
    "Scientific Reports",
    "Annals of Translational Medicine",
    "Revista Española de Cardiología",
    "Death Studies",
    "Heliyon",
    "Gastroenterology",
    "Journal of Hazardous Materials",
)

REAL_JOURNALS: dict[str, str | None] = {
    "10.1016/j.bbi.2020.04.028": "Brain, Behavior, and Immunity",
    "10.1093/cdn/nzab135": "Current Developments in Nutrition",
    "10.1056/nejmc2004973": "New England Journal of Medicine",
    "10.1038/s41433-019-0566-0": "Eye",
    "10.1016/j.rgmxen.2020.04.001": "Revista de Gastroenterología de México (English Edition)",
    "10.3389/fpsyt.2021.615390": "Frontiers in Psychiatry",
    "10.7759/cureus.25639": "Cureus",
    "10.3389/fpubh.2020.00240": "Frontiers in Public Health",
    "10.1097/cad.0000000000001254": "Anti-Cancer Drugs",
    "10.1001/jamanetworkopen.2020.3976": "JAMA Network Open",
    "10.1016/j.psychres.2020.113100": "Psychiatry Research",
    "10.1021/acs.estlett.0c00605": "Environmental Science & Technology Letters",
    "10.1053/j.gastro.2020.04.017": "Gastroenterology",
    "10.1016/j.apr.2021.02.002": "Atmospheric Pollution Research",
    "10.1016/j.ijnurstu.2021.104002": "International Journal of Nursing Studies",
    "10.1038/s41407-020-0313-1": "BDJ In Practice",
    "10.1016/j.sleep.2021.09.014": "Sleep Medicine",
    "10.1371/journal.pone.0265900": "PLOS ONE",
    "10.1016/j.ijid.2020.04.086": "International Journal of Infectious Diseases",
    "10.1016/j.techfore.2021.120732": "Technological Forecasting and Social Change",
    "10.1038/bmt.2012.184": "Bone Marrow Transplantation",
    "10.1080/10643389.2019.1694822": "Critical Reviews in Environmental Science and Technology",
    "10.1101/2020.03.09.20033381": None,
    "10.1101/2021.08.27.21262700": None,
    "10.1101/2020.11.24.20237750": None,
    "10.2337/dc20-0682": "Diabetes Care",
    "10.1093/cid/ciaa525": "Clinical Infectious Diseases",
    "10.3389/fpsyt.2020.602315": "Frontiers in Psychiatry",
    "10.1016/j.sleep.2020.07.009": "Sleep Medicine",
    "10.4314/sajas.v48i2.19": "South African Journal of Animal Science",
    "10.2139/ssrn.3714028": "SSRN Electronic Journal",
    "10.1080/07481187.2021.1889722": "Death Studies",
    "10.1016/j.janxdis.2021.102415": "Journal of Anxiety Disorders",
    "10.1016/j.psychres.2020.113392": "Psychiatry Research",
    "10.52131/joe.2020.0101.0016": "iRASD Journal of Economics",
    "10.1186/ar4520": "Arthritis Research & Therapy",
    "10.1016/j.envpol.2016.01.018": "Environmental Pollution",
}

PHRASES: tuple[str, ...] = (
    "mental health outcomes",
    "COVID-19 lockdowns",
    "mesenchymal stem cells",
    "microplastic pollution",
    "sleep quality",
    "food insecurity",
    "air quality",
    "healthcare workers",
    "postoperative delirium",
    "diabetic retinopathy screening",
    "stock market volatility",
    "loneliness",
    "systemic lupus erythematosus",
    "gastrointestinal symptoms",
    "fear of COVID-19",
    "insomnia",
    "lymphopenia",
    "olfactory dysfunction",
    "obesity",
    "probiotic supplementation",
    "PM2.5 exposure",
    "anxiety & depression",
    "burnout",
    "tourism demand",
    "metformin use",
    "surface stability of SARS-CoV-2",
    "umbilical cord MSC transplantation",
    "soil microplastics",
    "humidity and temperature",
    "regulatory T cells",
)
POPULATIONS: tuple[str, ...] = (
    "college students",
    "older adults",
    "nurses",
    "adolescents",
    "broiler chickens",
    "patients with type 2 diabetes",
    "urban populations",
    "freshwater fish",
    "medical students",
    "the general population",
)
PLACES: tuple[str, ...] = (
    "China",
    "Spain",
    "Brazil",
    "Portugal",
    "the United States",
    "Israel",
    "India",
    "Wuhan",
    "Bavaria",
    "South Africa",
    "São Paulo",
    "Québec",
)
TITLE_TEMPLATES: tuple[str, ...] = (
    "{A} and {B}: a systematic review and meta-analysis",
    "The impact of {A} on {B} among {P}",
    "{A} during the COVID-19 pandemic: a cross-sectional study in {L}",
    "Association between {A} and {B} in {P}",
    "Revisiting {A}: evidence from {L}",
    "{A} in {P}: a longitudinal cohort study",
    "Is {A} linked to {B}? Results from a multi-centre survey",
    "Effects of {A} on {B}: a randomised controlled trial",
    "{A} among {P} in {L}",
    "Understanding {A} and {B} (preliminary report)",
)


@dataclass(frozen=True, slots=True)
class RealReport:
    """One line of real-reports.jsonl, texts normalised."""

    doi: str
    slug: str
    year: int | None
    title: str
    abstract: str | None
    truncated_abstract: bool
    tallies: dict[str, int] | None
    cited_by_publications: int | None
    citation_statements: int | None
    references_publications: int | None
    statements: tuple[dict[str, Any], ...]


def plain(text: str) -> str:
    """Normalised text with any markup tags removed."""
    return clean_text(_TAG_RE.sub("", text)) or ""


@cache
def real_reports() -> tuple[RealReport, ...]:
    """The 37 real reports shipped in the package, texts normalised."""
    out: list[RealReport] = []
    with REAL_REPORTS_PATH.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            r = json.loads(line)
            stmts = tuple(
                {**s, "snippet": clean_text(s["snippet"]), "section": clean_text(s["section"])}
                for s in r["statements"]
            )
            out.append(
                RealReport(
                    doi=r["doi"].lower(),
                    slug=str(r["url"]).rstrip("/").rsplit("/", 1)[-1],
                    year=r["year"],
                    title=plain(r["title"]),
                    abstract=clean_text(r["abstract"]),
                    truncated_abstract=bool(r["truncated_abstract"]),
                    tallies=r["tallies"],
                    cited_by_publications=r["cited_by_publications"],
                    citation_statements=r["citation_statements"],
                    references_publications=r["references_publications"],
                    statements=stmts,
                )
            )
    return tuple(out)


def _usable(piece: str) -> bool:
    return len(piece) >= 40 and piece[0] not in _QUOTES and piece[-1] not in _QUOTES


@dataclass(frozen=True, slots=True)
class Pools:
    """Text pools drawn from the real data."""

    titles: tuple[str, ...]
    abstracts: tuple[str, ...]
    snippets: tuple[str, ...]
    sentences: tuple[str, ...]
    sections: tuple[str, ...]


@cache
def pools() -> Pools:
    """Pools of real titles, abstracts, snippets, snippet sentences and sections."""
    reals = real_reports()
    snippets: dict[str, None] = {}
    sections: dict[str, None] = {}
    for r in reals:
        for s in r.statements:
            if s["snippet"]:
                snippets[s["snippet"]] = None
            if s["section"]:
                sections[s["section"]] = None
    for sample in SAMPLE_SNIPPETS:
        snippets[clean_text(sample) or sample] = None
    sentences: dict[str, None] = {}
    for snip in snippets:
        body = snip.strip("… ").strip()
        for piece in _SENTENCE_SPLIT_RE.split(body):
            piece = piece.strip()
            if _usable(piece):
                sentences[piece] = None
    return Pools(
        titles=tuple(r.title for r in reals),
        abstracts=tuple(r.abstract for r in reals if r.abstract),
        snippets=tuple(snippets),
        sentences=tuple(sentences),
        sections=tuple(sections) + EXTRA_SECTIONS,
    )
