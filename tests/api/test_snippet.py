"""GET /dni.js and GET /v1/pools/{name}/snippet: the page script, its caching and its tag."""

from __future__ import annotations

import base64
import gzip
import hashlib
import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from app import assets
from app.assets import compact_js
from app.main import create_app
from tests.api.helpers import FALLBACK, make_pool
from tests.conftest import make_settings
from tests.support import ADMIN, FakeClock

SCRIPT = Path(__file__).resolve().parents[2] / "app" / "static" / "dni.js"
BUDGET = 6144  # bytes of gzip the snippet may weigh on every page
IDENTITY = {"Accept-Encoding": "identity"}
GZIP = {"Accept-Encoding": "gzip"}
SHORT = "public, max-age=300"
LONG = "public, max-age=31536000, immutable"
SHOP = "https://www.shop.example"  # the one origin the CORS app lets call the API
OTHER = "https://evil.example"


def served() -> bytes:
    """dni.js as the service sends it: the file, compacted."""
    return compact_js(SCRIPT.read_bytes())


def sri(body: bytes) -> str:
    """The Subresource Integrity value of `body`."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


async def raw_get(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> tuple[httpx.Response, bytes]:
    """GET `url`; the response and its body as sent, not decoded."""
    async with client.stream("GET", url, headers=headers) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    return response, raw


async def served_version(client: httpx.AsyncClient) -> str:
    """The script's version, from the ETag it is served with."""
    response = await client.get("/dni.js", headers=IDENTITY)
    assert response.status_code == 200
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    version = etag.strip('"')
    assert version == assets.asset("dni.js").version
    return version


class Tags(HTMLParser):
    """Every start tag of a fragment, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ends: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Record a start tag."""
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        """Record an end tag."""
        self.ends.append(tag)


def parse_tag(html: str) -> dict[str, str | None]:
    """The attributes of the one script element `html` must be."""
    parser = Tags()
    parser.feed(html)
    parser.close()
    assert [tag for tag, _ in parser.tags] == ["script"], html
    assert parser.ends == ["script"], html
    return parser.tags[0][1]


async def snippet(
    client: httpx.AsyncClient, pool: str = "default", **params: str
) -> dict[str, object]:
    """GET /v1/pools/{pool}/snippet; its JSON, asserting a 200."""
    response = await client.get(f"/v1/pools/{pool}/snippet", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


# --- the script ------------------------------------------------------------------------------


def test_compact_js_keeps_every_code_line_in_order_and_drops_the_rest() -> None:
    source = SCRIPT.read_bytes()
    compacted = compact_js(source)
    lines = compacted.decode().split("\n")
    assert lines[-1] == "", "the output ends with a line break"
    lines = lines[:-1]
    code = [line.strip() for line in source.decode().splitlines()]
    code = [line for line in code if line and not line.startswith("//")]
    # Each code line of the file, stripped, in order; nothing else.
    assert lines == code
    assert not [line for line in lines if line.startswith("//")]
    assert not [line for line in lines if not line or line != line.strip()]
    assert len(compacted) < len(source)
    # What a page downloads: the compacted script, gzipped, within the budget.
    size = len(gzip.compress(compacted, compresslevel=9, mtime=0))
    assert size < BUDGET, f"dni.js is {size} bytes gzipped, over {BUDGET}"
    assert size == len(assets.asset("dni.js").gzipped)


def test_compact_js_leaves_code_and_trailing_comments_alone() -> None:
    source = (
        b"// a header\n"
        b"\n"
        b"(function () {\r\n"
        b'    var a = "// not a comment"; // kept: the line has code\n'
        b"\t\t  // indented comment\n"
        b"   \t\n"
        b"  /* a block\n"
        b"   * comment */\n"
        b"  return a;\n"
        b"})();"
    )
    assert compact_js(source) == (
        b"(function () {\n"
        b'var a = "// not a comment"; // kept: the line has code\n'
        b"/* a block\n"
        b"* comment */\n"
        b"return a;\n"
        b"})();\n"
    )
    assert compact_js(b"") == b"\n"


async def test_script_is_under_budget_gzipped_and_decompresses_to_the_compacted_file(
    client: httpx.AsyncClient,
) -> None:
    response, raw = await raw_get(client, "/dni.js", GZIP)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) < BUDGET, f"dni.js is {len(raw)} bytes gzipped, over {BUDGET}"
    assert gzip.decompress(raw) == served()
    assert served() != SCRIPT.read_bytes()
    assert int(response.headers["content-length"]) == len(raw)


async def test_script_is_plain_without_gzip_in_accept_encoding(client: httpx.AsyncClient) -> None:
    for accept in ("identity", "br", "deflate, br", "gzip;q=0", "gzip; q=0.0, identity", ""):
        response, raw = await raw_get(client, "/dni.js", {"Accept-Encoding": accept})
        assert response.status_code == 200, accept
        assert "content-encoding" not in response.headers, accept
        assert raw == served(), accept
    for accept in ("GZIP", "br, gzip;q=0.5", "*"):
        response, raw = await raw_get(client, "/dni.js", {"Accept-Encoding": accept})
        assert response.headers["content-encoding"] == "gzip", accept
        assert gzip.decompress(raw) == served(), accept


async def test_script_headers_type_vary_cors_and_corp(client: httpx.AsyncClient) -> None:
    for headers in (IDENTITY, GZIP):
        response = await client.get("/dni.js", headers=headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["cross-origin-resource-policy"] == "cross-origin"


async def test_versioned_url_is_immutable_and_others_are_cached_briefly(
    client: httpx.AsyncClient,
) -> None:
    version = await served_version(client)
    assert version == hashlib.sha256(served()).hexdigest()[:16]
    for headers in (IDENTITY, GZIP):
        pinned = await client.get(f"/dni.js?v={version}", headers=headers)
        assert pinned.status_code == 200
        assert pinned.headers["cache-control"] == LONG
        assert pinned.content == served()
    for url in (
        "/dni.js",
        "/dni.js?v=0123456789abcdef",
        "/dni.js?v=",
        f"/dni.js?v={version}x",
        f"/dni.js?v={version}-gz",
        f"/dni.js?v={hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]}",
    ):
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == SHORT, url
        assert response.content == served(), url


@pytest.mark.parametrize(
    ("encoding", "suffix"), [(IDENTITY, ""), (GZIP, "-gz")], ids=["identity", "gzip"]
)
async def test_etag_round_trip_answers_304_without_a_body(
    client: httpx.AsyncClient, encoding: dict[str, str], suffix: str
) -> None:
    version = await served_version(client)
    first = await client.get(f"/dni.js?v={version}", headers=encoding)
    etag = first.headers["etag"]
    # Each encoding is its own representation, with its own validator.
    assert etag == f'"{version}{suffix}"'
    for tag in (etag, f"W/{etag}", "*", f'"stale", {etag}', f' "other" ,W/{etag} '):
        again = await client.get(f"/dni.js?v={version}", headers={**encoding, "If-None-Match": tag})
        assert again.status_code == 304, tag
        assert again.content == b"", tag
        assert "content-encoding" not in again.headers, tag
        assert again.headers["etag"] == etag, tag
        assert again.headers["cache-control"] == LONG, tag
        assert again.headers["vary"] == "Accept-Encoding", tag
        assert again.headers["access-control-allow-origin"] == "*", tag
    for tag in ('"stale"', f'"{version}x"', "W/"):
        miss = await client.get("/dni.js", headers={**encoding, "If-None-Match": tag})
        assert miss.status_code == 200, tag
        assert miss.content == served(), tag
        assert miss.headers["etag"] == etag, tag


async def test_an_etag_of_the_other_encoding_gets_the_full_response(
    client: httpx.AsyncClient,
) -> None:
    version = await served_version(client)
    plain_tag = (await client.get("/dni.js", headers=IDENTITY)).headers["etag"]
    gzip_tag = (await client.get("/dni.js", headers=GZIP)).headers["etag"]
    assert (plain_tag, gzip_tag) == (f'"{version}"', f'"{version}-gz"')
    # The identity validator, from a client that now takes gzip: the gzip body, not a 304.
    for tag in (plain_tag, f"W/{plain_tag}"):
        response, raw = await raw_get(client, "/dni.js", {**GZIP, "If-None-Match": tag})
        assert response.status_code == 200, tag
        assert response.headers["content-encoding"] == "gzip", tag
        assert response.headers["etag"] == gzip_tag, tag
        assert gzip.decompress(raw) == served(), tag
    # And the gzip validator from a client that no longer takes gzip: the plain body.
    for tag in (gzip_tag, f"W/{gzip_tag}"):
        response, raw = await raw_get(client, "/dni.js", {**IDENTITY, "If-None-Match": tag})
        assert response.status_code == 200, tag
        assert "content-encoding" not in response.headers, tag
        assert response.headers["etag"] == plain_tag, tag
        assert raw == served(), tag
    # A list naming both validators matches whichever encoding is served.
    both = f"{plain_tag}, {gzip_tag}"
    for headers in (IDENTITY, GZIP):
        again = await client.get("/dni.js", headers={**headers, "If-None-Match": both})
        assert again.status_code == 304, headers


async def test_script_and_demo_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "/v1/pools/{name}/snippet" in paths
    assert "/dni.js" not in paths
    assert not [p for p in paths if p.startswith(("/demo", "/dni"))]


# --- the snippet endpoint --------------------------------------------------------------------


async def test_snippet_by_default_loads_the_current_script_unpinned(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, size=1)
    body = await snippet(client)
    assert body["pool"] == "default"
    assert body["pinned"] is False
    assert body["src"] == "http://calltrack.test/dni.js"
    # The digest is still given: of the script as served (compacted), not of the file.
    assert body["integrity"] == sri(served())
    assert body["integrity"] != sri(SCRIPT.read_bytes())
    _, raw = await raw_get(client, "/dni.js", GZIP)
    assert body["gzip_bytes"] == len(raw)
    attributes = parse_tag(str(body["html"]))
    assert attributes["src"] == body["src"]
    assert "integrity" not in attributes
    assert "crossorigin" not in attributes
    # The tag's URL is revalidated, so an upgrade of the service reaches every page.
    src = str(body["src"]).removeprefix("http://calltrack.test")
    loaded, plain = await raw_get(client, src, IDENTITY)
    assert loaded.headers["cache-control"] == SHORT
    assert sri(plain) == body["integrity"]


async def test_snippet_pins_the_served_script_with_its_integrity(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, size=1)
    body = await snippet(client, pin="true")
    version = await served_version(client)
    assert body["pool"] == "default"
    assert body["pinned"] is True
    assert body["src"] == f"http://calltrack.test/dni.js?v={version}"
    assert body["integrity"] == sri(served())
    _, raw = await raw_get(client, "/dni.js", GZIP)
    assert body["gzip_bytes"] == len(raw)
    attributes = parse_tag(str(body["html"]))
    assert attributes["src"] == body["src"]
    assert attributes["integrity"] == body["integrity"]
    assert attributes["crossorigin"] == "anonymous"
    # The tag's URL is the immutable one, and the digest is of what it serves.
    src = str(body["src"]).removeprefix("http://calltrack.test")
    for headers in (IDENTITY, GZIP):
        pinned, plain = await raw_get(client, src, headers)
        assert pinned.headers["cache-control"] == LONG
        if headers is GZIP:
            plain = gzip.decompress(plain)
        assert body["integrity"] == sri(plain)
    # Pinned or not, the same script and the same digest.
    unpinned = await snippet(client, pin="false")
    assert unpinned["pinned"] is False
    assert unpinned["integrity"] == body["integrity"]
    assert unpinned["gzip_bytes"] == body["gzip_bytes"]


async def test_snippet_tag_names_pool_and_fallback_only_with_asked_options(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, "shop-2_eu", size=0)
    plain = await snippet(client, "shop-2_eu")
    assert str(plain["html"]).startswith("<script async ")
    assert str(plain["html"]).endswith("></script>")
    assert parse_tag(str(plain["html"])) == {
        "async": None,
        "src": plain["src"],
        "data-pool": "shop-2_eu",
        "data-numbers": FALLBACK,
    }
    pinned = await snippet(client, "shop-2_eu", pin="true")
    assert parse_tag(str(pinned["html"])) == {
        "async": None,
        "src": pinned["src"],
        "integrity": pinned["integrity"],
        "crossorigin": "anonymous",
        "data-pool": "shop-2_eu",
        "data-numbers": FALLBACK,
    }
    both = await snippet(client, "shop-2_eu", consent="true", heartbeat="30")
    attributes = parse_tag(str(both["html"]))
    assert attributes["data-consent"] == "required"
    assert attributes["data-heartbeat"] == "30"
    assert attributes["data-pool"] == "shop-2_eu"
    only_consent = parse_tag(str((await snippet(client, "shop-2_eu", consent="1"))["html"]))
    assert only_consent["data-consent"] == "required"
    assert "data-heartbeat" not in only_consent
    off = parse_tag(str((await snippet(client, "shop-2_eu", consent="false"))["html"]))
    assert "data-consent" not in off
    for heartbeat in ("5", "3600"):
        edge = parse_tag(str((await snippet(client, "shop-2_eu", heartbeat=heartbeat))["html"]))
        assert edge["data-heartbeat"] == heartbeat
        assert "data-consent" not in edge


async def test_snippet_tag_attributes_come_in_a_fixed_order(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    cases = [
        ({}, []),
        ({"pin": "true"}, ["integrity", "crossorigin"]),
    ]
    for params, pinned in cases:
        for extra, options in (
            ({}, []),
            ({"heartbeat": "30"}, ["data-heartbeat"]),
            ({"consent": "true"}, ["data-consent"]),
            # Given in the other order, written in this one.
            ({"heartbeat": "30", "consent": "true"}, ["data-consent", "data-heartbeat"]),
        ):
            body = await snippet(client, **params, **extra)
            attributes = list(parse_tag(str(body["html"])))
            expected = ["async", "src", *pinned, "data-pool", "data-numbers", *options]
            assert attributes == expected, (params, extra)


async def test_snippet_follows_a_changed_fallback_number(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    patched = await client.patch(
        "/v1/pools/default", json={"fallback_number": "(212) 555-0177"}, headers=ADMIN
    )
    assert patched.status_code == 200
    assert parse_tag(str((await snippet(client))["html"]))["data-numbers"] == "+12125550177"


async def test_snippet_uses_the_public_url_when_set(database_url: str, clock: FakeClock) -> None:
    settings = make_settings(database_url, public_url="https://track.example.com/")
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as c:
            await make_pool(c, size=0)
            body = await snippet(c)
            pinned = await snippet(c, pin="true")
            version = await served_version(c)
    assert body["src"] == "https://track.example.com/dni.js"
    assert parse_tag(str(body["html"]))["src"] == body["src"]
    assert pinned["src"] == f"https://track.example.com/dni.js?v={version}"
    assert parse_tag(str(pinned["html"]))["src"] == pinned["src"]


async def test_snippet_of_an_unknown_pool_is_a_404_naming_the_pool(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/pools/nope/snippet", headers=ADMIN)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "name"
    assert "nope" in response.json()["detail"]


async def test_snippet_needs_the_admin_token(client: httpx.AsyncClient) -> None:
    await make_pool(client, size=0)
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"}):
        response = await client.get("/v1/pools/default/snippet", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "html" not in response.json()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"heartbeat": "4"}, "query.heartbeat"),
        ({"heartbeat": "3601"}, "query.heartbeat"),
        ({"heartbeat": "often"}, "query.heartbeat"),
        ({"consent": "maybe"}, "query.consent"),
        ({"pin": "maybe"}, "query.pin"),
    ],
)
async def test_bad_snippet_options_are_refused_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    await make_pool(client, size=0)
    response = await client.get("/v1/pools/default/snippet", params=params, headers=ADMIN)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    ("accept", "gzipped"),
    [
        ("gzip;q=0, *", False),
        ("*;q=0, gzip", True),
        ("gzip;q=0.000", False),
        ("gzip;q=0.001", True),
        ("gzip;q=oops", False),
    ],
)
async def test_an_explicit_gzip_weight_wins_over_the_wildcard(
    client: httpx.AsyncClient, accept: str, gzipped: bool
) -> None:
    served = await client.get("/dni.js", headers={"Accept-Encoding": accept})
    assert served.status_code == 200
    assert ("content-encoding" in served.headers) is gzipped


async def test_head_answers_the_headers_without_a_body(client: httpx.AsyncClient) -> None:
    head = await client.head("/dni.js")
    got = await client.get("/dni.js")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == got.headers["etag"]
    for headers in (IDENTITY, GZIP):
        head = await client.head("/dni.js", headers=headers)
        got = await client.get("/dni.js", headers=headers)
        assert head.content == b"", headers
        assert head.headers["etag"] == got.headers["etag"], headers


# --- CORS, with origins configured -----------------------------------------------------------


def random_peer() -> str:
    """An address no other run uses, so a shared rate-limit counter starts at zero."""
    return str(ipaddress.IPv6Address(b"\x20\x01\x0d\xb8" + secrets.token_bytes(12)))


@asynccontextmanager
async def cors_client(
    database_url: str, clock: FakeClock, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that lets SHOP call its API from the browser."""
    settings = make_settings(database_url, cors_origins=[SHOP], **overrides)
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(random_peer(), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://calltrack.test") as c:
            yield c


def vary(response: httpx.Response) -> list[str]:
    """The header names of every Vary header, lower-cased."""
    return [
        name.strip().lower()
        for value in response.headers.get_list("vary")
        for name in value.split(",")
        if name.strip()
    ]


async def test_with_cors_origins_the_script_keeps_its_one_answer_for_all(
    database_url: str, clock: FakeClock
) -> None:
    async with cors_client(database_url, clock) as c:
        version = await served_version(c)
        for origin in (SHOP, OTHER, None):
            for encoding in (IDENTITY, GZIP):
                headers = {**encoding, **({"Origin": origin} if origin else {})}
                for url in ("/dni.js", f"/dni.js?v={version}"):
                    response = await c.get(url, headers=headers)
                    assert response.status_code == 200, (url, headers)
                    assert response.content == served(), (url, headers)
                    assert response.headers["access-control-allow-origin"] == "*", headers
                    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
                    # Not varied by Origin: a CDN may hand this one answer to every site.
                    assert vary(response) == ["accept-encoding"], (url, headers)
                    assert "access-control-expose-headers" not in response.headers, headers
                    revalidated = await c.get(
                        url, headers={**headers, "If-None-Match": response.headers["etag"]}
                    )
                    assert revalidated.status_code == 304, (url, headers)
                    assert revalidated.headers["access-control-allow-origin"] == "*", headers
                    assert vary(revalidated) == ["accept-encoding"], (url, headers)
            head = await c.head("/dni.js", headers={"Origin": origin} if origin else {})
            assert head.headers["access-control-allow-origin"] == "*", origin
            assert vary(head) == ["accept-encoding"], origin


async def test_with_cors_origins_the_api_answers_a_preflight_only_from_them(
    database_url: str, clock: FakeClock
) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    async with cors_client(database_url, clock) as c:
        allowed = await c.options("/get_tracking_number", headers={"Origin": SHOP, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == SHOP
        methods = [m.strip() for m in allowed.headers["access-control-allow-methods"].split(",")]
        assert "POST" in methods
        allowed_headers = allowed.headers["access-control-allow-headers"].lower()
        assert "content-type" in [h.strip() for h in allowed_headers.split(",")]
        assert "origin" in vary(allowed)
        refused = await c.options("/get_tracking_number", headers={"Origin": OTHER, **preflight})
        assert refused.status_code == 400
        assert "access-control-allow-origin" not in refused.headers


async def test_with_cors_origins_the_api_exposes_retry_after_to_them(
    database_url: str, clock: FakeClock
) -> None:
    async with cors_client(database_url, clock, public_rate_limit="1/minute") as c:
        await make_pool(c, size=1)
        first = await c.post("/get_tracking_number", json={}, headers={"Origin": SHOP})
        assert first.status_code == 200, first.text
        assert first.headers["access-control-allow-origin"] == SHOP
        assert "origin" in vary(first)
        exposed = first.headers["access-control-expose-headers"].lower()
        assert "retry-after" in [h.strip() for h in exposed.split(",")]
        # Rate-limited, the page can read when to come back.
        limited = await c.post("/get_tracking_number", json={}, headers={"Origin": SHOP})
        assert limited.status_code == 429, limited.text
        assert int(limited.headers["retry-after"]) > 0
        assert limited.headers["access-control-allow-origin"] == SHOP
        exposed = limited.headers["access-control-expose-headers"].lower()
        assert "retry-after" in [h.strip() for h in exposed.split(",")]
        other = await c.post("/get_tracking_number", json={}, headers={"Origin": OTHER})
        assert "access-control-allow-origin" not in other.headers
