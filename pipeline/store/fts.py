"""What a person types to `citepipe search`, as a SQLite FTS5 query.

FTS5 fails on `COVID-19` (`no such column: 19`), and on `T-cells`, `it's` and `e.g.`:
outside double quotes only letters, digits, `_` and non-ASCII characters make a word. So
each term that holds anything else is quoted as a phrase (`"COVID-19"`, which the
tokenizer splits into `covid 19`, next to each other), and the documented syntax is kept
as it is:
`"a phrase"`, `OR`, `NOT`, `AND`, `prefix*` (also after a quoted term: `"T-cell"*`),
`NEAR(a b)` and parentheses. A double quote left open is a bad query (StoreError).
"""

from __future__ import annotations

import re

from pipeline.errors import StoreError

OPERATORS = frozenset({"OR", "NOT", "AND"})
# One token: a quoted phrase (maybe with a prefix star), a NEAR group, a parenthesis, or a
# run of anything else up to the next space, quote or parenthesis.
_TOKEN = re.compile(r'"[^"]*"\s*\*?|NEAR\([^()"]*\)|[()]|[^\s"()]+')
_BAREWORD = re.compile(r"[\w\u0080-\U0010ffff]+\*?")


def fts5_query(text: str) -> str:
    """`text` with every term FTS5 would misread quoted as a phrase; see the module doc."""
    if text.count('"') % 2:
        raise StoreError(f"bad search query {text!r}: a double quote is not closed")
    out: list[str] = []
    for token in _TOKEN.findall(text):
        if token.startswith('"'):  # a phrase, maybe with a prefix star after it
            phrase, _, star = token.rpartition('"')
            out.append(f'{phrase}"{star.strip()}')
        elif (
            token.startswith(("NEAR(", "(", ")"))
            or token in OPERATORS
            or _BAREWORD.fullmatch(token)
        ):
            out.append(token)
        else:
            star = token.endswith("*")
            term = token.rstrip("*")
            if term:
                out.append(f'"{term}"' + ("*" if star else ""))
    if not out:
        raise StoreError(f"bad search query {text!r}: no word to search for")
    return " ".join(out)
