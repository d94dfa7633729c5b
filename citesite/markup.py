"""The per-page markup choices of the local site's report pages, and the text helpers
they use.

A `PageMarkup` is drawn from a page's seed (`style.page_seed`) and decides what the
contract leaves open: attribute order and quoting, extra classes, named entities, NFD
text, `&nbsp;`, inline markup in snippets, thousands separators or (a fault mode)
suffixed counts (`suffixed_count`, `suffixed_value`). `citesite.render` builds each part
of a page through it; kept apart so the page's structure reads apart from its variation.
"""

from __future__ import annotations

import random
import re
import unicodedata
from html import escape
from typing import Final

_ENTITIES: Final = {
    "…": "&hellip;",
    "–": "&ndash;",
    "—": "&mdash;",
    "’": "&rsquo;",
    "‘": "&lsquo;",
    "é": "&eacute;",
    "ü": "&uuml;",
    "ö": "&ouml;",
    "í": "&iacute;",
    "°": "&deg;",
    "±": "&plusmn;",
    "≥": "&ge;",
    "≤": "&le;",
}
_ENTITY_RE: Final = re.compile("[" + "".join(_ENTITIES) + "]")
_REF_RE: Final = re.compile(r"\[[\d,\s–-]+\]|\(\d+(?:,\d+)*\)")
_NUM_RE: Final = re.compile(r"(?<![&#\w;])(\d{1,4})(?![\w;])")
WORD_RE: Final = re.compile(r"(?<![&\w;])([A-Za-z]{5,})(?![\w;])")
_QUOTES: Final = (("&ldquo;", "&rdquo;"), ("\u201c", "\u201d"), ("&#8220;", "&#x201D;"))


_TEXT_SPECIAL: Final = re.compile(r"[&<>]")
_ATTR_SPECIAL: Final = re.compile(r"[&<>\"']")


def esc(text: str) -> str:
    """Text escaped for an element's content (fast when there is nothing to escape)."""
    return escape(text, quote=False) if _TEXT_SPECIAL.search(text) else text


def attr(text: str) -> str:
    """Text escaped for a quoted attribute value (either quote)."""
    return escape(text, quote=True) if _ATTR_SPECIAL.search(text) else text


def _num(n: int, seps: bool) -> str:
    return f"{n:,}" if seps else str(n)


_SUFFIXES: Final = ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k"))


def suffixed_count(n: int) -> str:
    """A count as some sites show it: `999`, `1.2k`, `3.4M` (one decimal, rounded)."""
    for scale, suffix in _SUFFIXES:
        if n >= scale:
            tenths = round(n * 10 / scale)
            whole, tenth = divmod(tenths, 10)
            return f"{whole}.{tenth}{suffix}" if tenth else f"{whole}{suffix}"
    return str(n)


def suffixed_value(n: int) -> int:
    """What `suffixed_count(n)` means, read whole: 1234 -> `1.2k` -> 1200."""
    for scale, _ in _SUFFIXES:
        if n >= scale:
            return round(n * 10 / scale) * scale // 10
    return n


class PageMarkup:
    """Per-page markup choices and the helpers that apply them."""

    __slots__ = (
        "base",
        "comments",
        "entities",
        "extra",
        "indent",
        "markup",
        "nbsp",
        "nfd",
        "q",
        "quotes",
        "rng",
        "seps",
        "shuffle",
        "suffixed",
        "type_case",
    )

    def __init__(self, seed: int, base: str) -> None:
        rng = self.rng = random.Random(seed)
        self.base = base
        self.q = "'" if rng.random() < 0.2 else '"'
        self.shuffle = rng.random() < 0.5
        self.extra = rng.random() < 0.5
        self.entities = rng.random() < 0.5
        self.quotes = _QUOTES[rng.randrange(3)]
        self.indent = rng.random() < 0.6
        self.seps = rng.random() < 0.8
        self.type_case = rng.randrange(4)
        self.markup = rng.choice((0.0, 0.2, 0.5, 0.9))
        self.nfd = rng.random() < 0.07
        self.nbsp = rng.random() < 0.1
        self.comments = rng.random() < 0.5
        self.suffixed = False

    def num(self, n: int) -> str:
        """A count as this page writes it: `1,234`, `1234`, or (a fault mode) `1.2k`."""
        return suffixed_count(n) if self.suffixed else _num(n, self.seps)

    def tag(self, name: str, attrs: list[tuple[str, str]]) -> str:
        """An opening tag; attribute order and quoting vary."""
        if self.shuffle and len(attrs) > 1:
            attrs = attrs[:]
            self.rng.shuffle(attrs)
        q = self.q
        return f"<{name}" + "".join(f" {k}={q}{attr(v)}{q}" for k, v in attrs) + ">"

    def cls(self, base: str, *extra: str) -> str:
        if self.extra and extra:
            return f"{base} {self.rng.choice(extra)}"
        return base

    def text(self, text: str) -> str:
        """Escaped text, maybe with named entities and decomposed (NFD) letters."""
        if self.nfd:
            text = unicodedata.normalize("NFD", text)
        s = esc(text)
        if self.entities:
            s = _ENTITY_RE.sub(lambda m: _ENTITIES[m.group(0)], s)
        return s

    def rich(self, text: str, rate: float) -> str:
        """Text with inline markup that adds no text of its own: `<mark>`, `<em>`, `<sup>`,
        `<sub>`, `<i>`, `<br>` for a space, `&nbsp;`, line breaks."""
        s = self.text(text)
        rng = self.rng
        if rate <= 0.0 or rng.random() >= rate:
            return s
        if self.nbsp and " " in s:
            s = s.replace(" ", "&nbsp;", 1)
        if rng.random() < 0.3:
            i = s.find(" ", rng.randrange(1, max(2, len(s) - 1)))
            if 0 < i < len(s) - 1:
                s = s[:i] + rng.choice(("<br>", "<br/>", " <br>", "\n        ")) + s[i + 1 :]
        x = rng.random()
        if x < 0.35:
            s = _REF_RE.sub(r"<mark>\g<0></mark>", s, count=rng.randint(1, 3))
        elif x < 0.55:
            tag = rng.choice(("sup", "sub"))
            s = _NUM_RE.sub(rf"<{tag}>\1</{tag}>", s, count=1)
        if rng.random() < 0.4:
            tag = rng.choice(("em", "i", "b", 'span class="hl"'))
            end = tag.split(" ", 1)[0]
            words = list(WORD_RE.finditer(s))
            if words:
                m = words[rng.randrange(len(words))]
                s = f"{s[: m.start()]}<{tag}>{m.group(0)}</{end}>{s[m.end() :]}"
        return s
