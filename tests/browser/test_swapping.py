"""dni.js in Chromium: every format of the business number becomes the tracking number."""

from __future__ import annotations

import httpx

from tests.api.helpers import make_pool
from tests.browser.harness import BUSINESS, Site, Tab, html_page, snippet

TRACKING = "+12565550101"  # the pool's only number, so every visitor gets this one

FORMATS = {
    # id: (what the page prints, what the visitor must see)
    "parens": ("(212) 555-0100", "(256) 555-0101"),
    "dots": ("212.555.0100", "256.555.0101"),
    "spaces-intl": ("+1 212 555 0100", "+1 256 555 0101"),
    "dashes": ("212-555-0100", "256-555-0101"),
    "long-distance": ("1-212-555-0100", "1-256-555-0101"),
    "intl-parens": ("+1 (212) 555-0100", "+1 (256) 555-0101"),
    "bare": ("2125550100", "2565550101"),
    "e164": ("+12125550100", "+12565550101"),
    "double-zero": ("001 212 555 0100", "001 256 555 0101"),
    "nbsp": ("212\u00a0555\u00a00100", "256\u00a0555\u00a00101"),
    "second-number": ("(212) 555-0111", "(256) 555-0101"),
    "sentence": (
        "Open 24/7. Call 212-555-0100 today; fax (212) 555-0199.",
        "Open 24/7. Call 256-555-0101 today; fax (212) 555-0199.",
    ),
}
LINKS = {
    "tel-e164": ("tel:+12125550100", "tel:+12565550101"),
    "tel-dashes": ("tel:212-555-0100", "tel:256-555-0101"),
    "tel-encoded": ("tel:+1%20212%20555%200100", "tel:+1%20256%20555%200101"),
    "tel-upper": ("TEL:2125550100", "TEL:2565550101"),
    "tel-other": ("tel:+12125550199", "tel:+12125550199"),
    "web-link": ("https://shop.example/?ref=2125550100", "https://shop.example/?ref=2125550100"),
}
UNTOUCHED = {
    "fax": "(212) 555-0199",
    "ignored": "212-555-0100",
    "short": "555-0100",
}


def formats_page(service: str, **snippet_data: str) -> str:
    """Every format in text and links, and the places the snippet must leave alone."""
    texts = "".join(f'<p id="{key}">{shown}</p>' for key, (shown, _) in FORMATS.items())
    links = "".join(f'<a id="{key}" href="{href}">link</a>' for key, (href, _) in LINKS.items())
    return html_page(
        texts
        + links
        + '<p id="fax">(212) 555-0199</p>'
        + '<div data-calltrack-ignore><span id="ignored">212-555-0100</span></div>'
        + '<p id="short">555-0100</p>'
        + '<textarea id="area">212-555-0100</textarea>'
        + '<input id="field" value="212-555-0100">'
        + '<p id="titled" title="212-555-0100">hover</p>',
        head=snippet(service, numbers=f"{BUSINESS}, +1 (212) 555-0111", **snippet_data),
    )


async def test_every_format_and_tel_link_shows_the_tracking_number_in_its_own_format(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = formats_page(base)
    await tab.page.goto(site.origin + "/")
    assert await tab.wait_number() == TRACKING
    for key, (_, expected) in FORMATS.items():
        assert await tab.text(f"#{key}") == expected, key
    for key, (_, expected) in LINKS.items():
        assert await tab.href(f"#{key}") == expected, key
    for key, expected in UNTOUCHED.items():
        assert await tab.text(f"#{key}") == expected, key
    assert await tab.page.input_value("#area") == "212-555-0100"
    assert await tab.page.input_value("#field") == "212-555-0100"
    assert await tab.page.get_attribute("#titled", "title") == "212-555-0100"
    api = await tab.page.evaluate("[CallTrack.telHref(), CallTrack.sessionId()]")
    assert api[0] == "tel:" + TRACKING
    assert len(api[1]) >= 16
    # One request, the first of the visit, carrying the landing page.
    assert len(tab.asked) == 1
    assert tab.asked[0]["pool"] == "default"
    assert tab.asked[0]["context"]["landing_url"] == site.origin + "/"


async def test_a_number_written_the_local_way_abroad_is_swapped_too(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    created = await ops.post(
        "/v1/pools",
        json={
            "name": "london",
            "destination": "+442079460000",
            "fallback_number": "+442079460000",
            "lease_ttl_seconds": 1800,
            "cooldown_seconds": 900,
        },
    )
    assert created.status_code == 201, created.text
    added = await ops.post("/v1/pools/london/numbers", json={"numbers": ["+442079460111"]})
    assert added.status_code == 201, added.text
    places = {
        "national": ("020 7946 0000", "020 7946 0111"),
        "international": ("+44 20 7946 0000", "+44 20 7946 0111"),
        "trunk-kept": ("+44 (0)20 7946 0000", "+44 (0)20 7946 0111"),
        "dialled-abroad": ("0044 20 7946 0000", "0044 20 7946 0111"),
    }
    site.pages["/uk"] = html_page(
        "".join(f'<p id="{key}">{shown}</p>' for key, (shown, _) in places.items())
        + '<a id="call" href="tel:02079460000">call</a>',
        head=snippet(base, pool="london", numbers="+44 20 7946 0000"),
    )
    await tab.page.goto(site.origin + "/uk")
    assert await tab.wait_number() == "+442079460111"
    for key, (_, expected) in places.items():
        assert await tab.text(f"#{key}") == expected, key
    assert await tab.href("#call") == "tel:02079460111"


async def test_late_content_page_rewrites_and_route_changes_are_swapped(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    script = """
    <script>
    window.step = function (name) {
      if (name === "late") {
        var footer = document.createElement("footer");
        footer.innerHTML = '<span id="late">Call (212) 555-0100</span>' +
          '<a id="late-link" href="tel:+12125550100">call</a>';
        document.body.appendChild(footer);
      } else if (name === "rewrite") {
        document.getElementById("rewritten").firstChild.data = "Now 212.555.0100";
        document.getElementById("relinked").setAttribute("href", "tel:2125550100");
      } else if (name === "route") {
        history.pushState(null, "", "/app/contact");
        document.getElementById("view").replaceChildren();
        var p = document.createElement("p");
        p.id = "contact";
        p.textContent = "Reach us at +1 212 555 0100";
        document.getElementById("view").appendChild(p);
      } else if (name === "reuse") {
        // A framework re-rendering a kept node with its template's text.
        document.getElementById("contact").textContent = "Reach us at (212) 555-0100";
      }
    };
    </script>"""
    site.pages["/app"] = html_page(
        '<div id="view"><p id="home">Home: 212-555-0100</p></div>'
        '<p id="rewritten">nothing yet</p><a id="relinked" href="/somewhere">x</a>' + script,
        head=snippet(base),
    )
    await tab.page.goto(site.origin + "/app")
    await tab.wait_number(TRACKING)
    assert await tab.text("#home") == "Home: 256-555-0101"

    await tab.page.evaluate("step('late')")
    assert await tab.text("#late") == "Call (256) 555-0101"
    assert await tab.href("#late-link") == "tel:+12565550101"

    await tab.page.evaluate("step('rewrite')")
    await tab.page.wait_for_function(
        "document.getElementById('rewritten').textContent === 'Now 256.555.0101'"
    )
    assert await tab.href("#relinked") == "tel:2565550101"

    await tab.page.evaluate("step('route')")
    assert await tab.text("#contact") == "Reach us at +1 256 555 0101"
    assert tab.page.url == site.origin + "/app/contact"
    await tab.page.evaluate("step('reuse')")
    await tab.page.wait_for_function(
        "document.getElementById('contact').textContent === 'Reach us at (256) 555-0101'"
    )
    await tab.page.go_back()
    assert tab.page.url == site.origin + "/app"
    # Route changes do not lease again: one visit, one request.
    assert len(tab.asked) == 1


async def test_a_number_beside_other_digits_is_found_and_its_neighbours_kept(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    places = {
        "hours": ("Call (212) 555-0100 (24 hours)", "Call (256) 555-0101 (24 hours)"),
        "always": ("(212) 555-0100 24/7", "(256) 555-0101 24/7"),
        "copyright": ("© 2024 212-555-0100", "© 2024 256-555-0101"),
        "since": ("Phone 212 555 0100 1990", "Phone 256 555 0101 1990"),
        "pair": ("212-555-0100 / 212-555-0199", "256-555-0101 / 212-555-0199"),
        "twice": ("212.555.0100 or 212.555.0100", "256.555.0101 or 256.555.0101"),
        "order": ("Order 9 2125550100 7", "Order 9 2565550101 7"),
        "longer": ("Ref 21255501001", "Ref 21255501001"),
    }
    site.pages["/"] = html_page(
        "".join(f'<p id="{key}">{shown}</p>' for key, (shown, _) in places.items()),
        head=snippet(base),
    )
    await tab.page.goto(site.origin + "/")
    await tab.wait_number(TRACKING)
    for key, (_, expected) in places.items():
        assert await tab.text(f"#{key}") == expected, key


async def test_copies_of_the_tracking_number_go_back_with_it(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    site.pages["/"] = html_page(
        '<header id="bar"><a id="call" href="tel:+12125550100">(212) 555-0100</a></header>'
        '<div id="editor" contenteditable="true"><span id="edit">212-555-0100</span></div>',
        head=snippet(base),
    )
    await tab.page.goto(site.origin + "/")
    await tab.wait_number(TRACKING)
    assert await tab.text("#call") == "(256) 555-0101"
    # What a CMS editor shows is left as written: the editor would save it.
    assert await tab.text("#edit") == "212-555-0100"
    # A sticky header cloned, and a widget re-rendered from its own innerHTML: both copy
    # the tracking number into nodes the snippet never saw with the business number.
    await tab.page.evaluate(
        "var copy = document.getElementById('bar').cloneNode(true);"
        " copy.id = 'sticky'; copy.firstChild.id = 'sticky-call'; document.body.appendChild(copy);"
        " var bar = document.getElementById('bar'); bar.innerHTML = bar.innerHTML;"
    )
    assert await tab.text("#sticky-call") == "(256) 555-0101"
    # Withdrawing consent puts the business number back everywhere, copies included.
    await tab.page.evaluate("CallTrack.consent(false)")
    for selector in ("#call", "#sticky-call"):
        assert await tab.text(selector) == "(212) 555-0100", selector
        assert await tab.href(selector) == "tel:+12125550100", selector


async def test_a_business_number_without_its_country_code_is_refused_with_a_warning(
    base: str, ops: httpx.AsyncClient, site: Site, tab: Tab
) -> None:
    await make_pool(ops, size=1, fallback_number=BUSINESS)
    warnings: list[str] = []
    tab.page.on(
        "console",
        lambda message: warnings.append(message.text) if message.type == "warning" else None,
    )
    site.pages["/"] = html_page(
        '<p id="phone">(212) 555-0100</p><p id="local">555-0100</p>',
        head=snippet(base, numbers="(212) 555-0100"),
    )
    await tab.page.goto(site.origin + "/")
    await tab.wait_number(TRACKING)  # the lease itself works
    assert await tab.text("#phone") == "(212) 555-0100"
    assert await tab.text("#local") == "555-0100"
    assert warnings == ["calltrack: data-numbers must be E.164: (212) 555-0100"]
