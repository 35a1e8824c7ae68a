"""Read the dashboard's HTML in tests: its charts as XML, its tables as rows of text."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import httpx
from defusedxml import ElementTree

from tests.support import ADMIN_TOKEN

SVG = "{http://www.w3.org/2000/svg}"


def chart(html: str, ident: str) -> Element:
    """The inline SVG with this id, parsed as XML (so it must be well-formed)."""
    found = re.search(rf'<svg [^>]*id="{re.escape(ident)}".*?</svg>', html, re.DOTALL)
    assert found, f"no chart {ident}"
    parsed: Element = ElementTree.fromstring(found.group(0))
    return parsed


def bars(svg: Element, kind: str = "bar") -> list[Element]:
    """The chart's rects of this class, in document order."""
    return [r for r in svg.iter(f"{SVG}rect") if r.get("class") == kind]


def titles(svg: Element, kind: str = "bar") -> list[str]:
    """The tooltip of each bar."""
    return [str(r.findtext(f"{SVG}title")) for r in bars(svg, kind)]


class _Tables(HTMLParser):
    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class = css_class
        self.inside = False
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and (self.css_class in (dict(attrs).get("class") or "").split()):
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, css_class: str) -> list[list[str]]:
    """The rows (header row first) of the table with this class, as cell texts."""
    parser = _Tables(css_class)
    parser.feed(html)
    return parser.rows


async def sign_in(client: httpx.AsyncClient, token: str = ADMIN_TOKEN) -> httpx.Response:
    """Post the login form as a browser does; the client keeps the cookie."""
    return await client.post(
        "/dashboard/login",
        content=urlencode({"token": token}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
