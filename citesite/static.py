"""What every page of the local site carries besides its report, and the pages that are
no report.

The static weight of a real page (generated styles and scripts, the head's extra tags,
the nav bar, a trending-statements aside full of decoy statements, the footer), which
`citesite.render` puts around each report page, and the small pages the server answers
instead of a report: the captcha and login walls, a private page, 404 and error pages.
Kept apart from `render` because none of it depends on a report or a page's seed.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------- static weight


_CSS_NAMES: Final = tuple(
    [
        "topbar",
        "nav-link",
        "search-box",
        "report-header",
        "report-title",
        "report-authors",
        "report-journal",
        "report-abstract",
        "show-more",
        "tally",
        "tally-label",
        "tally-count",
        "cited-by",
        "references",
        "facet",
        "facet-label",
        "facet-count",
        "statement",
        "snippet",
        "citing-paper",
        "citing-title",
        "citing-year",
        "citing-journal",
        "statement-section",
        "statement-type",
        "statement-confidence",
        "pagination",
        "trending",
        "footer",
        "assistant",
        "card",
        "chip",
        "badge",
        "tooltip",
        "modal",
        "overlay",
        "drawer",
    ]
)


def _css() -> str:
    rules = []
    for i, name in enumerate(_CSS_NAMES):
        rules.append(
            f".{name}{{margin:{i % 5}px {i % 7}px;padding:{i % 3}em {i % 4}em;"
            f"font:{12 + i % 6}px/1.{4 + i % 4} Inter,system-ui,sans-serif;color:#{i * 7919:06x}"
            f"}}.{name}:hover{{opacity:.{5 + i % 5}}}.{name}--active{{border:1px solid "
            f"#{i * 104729 % 0xFFFFFF:06x}}}@media (max-width:{600 + 20 * i}px){{.{name}"
            f"{{display:{'block' if i % 2 else 'flex'};gap:{i % 9}px}}}}"
        )
    rules.append("/* h1.report-title{} .statement{} ol.statements > li.statement{} */")
    return "".join(rules)


def _js() -> str:
    parts = [
        "(function(){var w=window,d=document;w.__cfg={api:'/api/v2',flags:{assistant:!0,"
        "alerts:!0}};function q(s){return d.querySelector(s)}",
        "function tpl(r){return '<li class=\"statement\" data-citing-doi=\"'+r.doi+'\">'+"
        "'<blockquote class=\"snippet\">'+r.text+'</blockquote></li>'}",
        "var decoy={doi:'10.9999/js-decoy',title:'<h1 class=\"report-title\">Not this</h1>',"
        "tallies:{supporting:999,mentioning:999,contrasting:999}};",
    ]
    for i in range(60):
        parts.append(
            f"function m{i}(a,b){{var c=a&&a.length?a[{i % 7}]:null;if(!c)return b;"
            f"return c.replace(/[{chr(97 + i % 26)}-z]+/g,function(x){{return x.length>{i % 9}"
            f"?x:b}})}}w.m{i}=m{i};"
        )
    parts.append("q('h1.report-title');})();")
    return "".join(parts)


_CSS: Final = _css()
_JS: Final = _js()
HEAD_STATIC: Final = (
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta property="og:type" content="article">\n'
    '<meta name="theme-color" content="#0b3d5c">\n'
    '<link rel="preconnect" href="https://cdn.example.net">\n'
    '<link rel="icon" href="/favicon.ico">\n'
    f"<style>{_CSS}</style>\n"
    '<script>window.__analytics={page:"report",doi:"10.9999/not-this-one"};</script>\n'
    f"<script>{_JS}</script>\n"
)
NAV: Final = (
    '<nav class="topbar"><a href="/">Home</a> <a href="/search">Search</a> '
    '<a href="/dashboards">Dashboards</a> <a href="/pricing">Pricing</a> '
    '<a href="/login">Log in</a> <a href="/register" class="badge">Sign up</a>'
    '<div class="tally-count badge">3</div></nav>\n'
)
TRENDING: Final = (
    '<aside class="trending"><h2>Trending citation statements</h2>\n'
    '  <ul class="statements">'
    '<li class="statement" data-citing-doi="10.9999/decoy"><blockquote class="snippet">'
    'Not part of this report.</blockquote><span class="statement-type">supporting</span>'
    '<span class="statement-confidence">confidence: 12%</span></li>'
    '<li class="statement" data-citing-doi="10.9999/decoy.2"><blockquote class="snippet">'
    '&ldquo;Nor is this one.&rdquo;</blockquote><span class="statement-type">contrasting'
    '</span></li></ul>\n  <div class="tally" data-type="supporting">'
    '<span class="tally-count">9,999</span></div>\n</aside>\n'
)
FOOTER: Final = (
    '<footer><div class="footer-cols"><ul><li><a href="/about">About</a></li>'
    '<li><a href="/blog">Blog</a></li><li><a href="/careers">Careers</a></li></ul>'
    '<ul><li><a href="/terms">Terms</a></li><li><a href="/privacy">Privacy</a></li>'
    '<li><a href="/contact">Contact</a></li></ul></div>'
    "<p>© Citation index · Data from open sources · "
    '<a href="/terms">Terms</a></p></footer>\n'
)


# --------------------------------------------------------------------------- other pages


def _simple(title: str, body: str) -> bytes:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}'
        f'</title>\n<style>{_CSS[:2000]}</style>\n</head>\n<body>\n<div id="app">{NAV}'
        f"{body}</div>\n{FOOTER}</body>\n</html>\n"
    ).encode()


CAPTCHA_PAGE: Final = _simple(
    "Just a moment...",
    '<main class="challenge"><h1>Checking your browser before accessing the site</h1>'
    '<form action="/challenge" method="post"><div class="captcha" data-sitekey="6Lc-decoy">'
    '</div><input type="hidden" name="r" value="x1"><button>I am human</button></form>'
    "<p>This process is automatic. Your browser will redirect shortly.</p></main>\n",
)
LOGIN_PAGE: Final = _simple(
    "Log in | Citation index",
    '<main class="login-wall"><h1>Log in to see this citation report</h1>'
    '<form action="/login" method="post"><label>Email <input name="email"></label>'
    '<label>Password <input type="password" name="password"></label>'
    "<button>Log in</button></form><p>Reports are free for registered users.</p></main>\n",
)
PRIVATE_PAGE: Final = _simple(
    "Private | Citation index",
    '<main class="private"><h1>Staff only</h1><p>This area is not part of the public '
    "report pages.</p></main>\n",
)
NOT_FOUND_PAGE: Final = _simple(
    "Not found | Citation index",
    '<main class="not-found"><h1>We could not find that report</h1>'
    '<p><a href="/search">Search</a> for a paper by title or DOI.</p></main>\n',
)


def error_page(status: int) -> bytes:
    """A small error page for a fault status."""
    return _simple(
        f"Error {status}",
        f'<main class="error"><h1>Error {status}</h1>'
        "<p>Something went wrong on our side. Please try again.</p></main>\n",
    )
