"""GET /dni.js and GET /v1/pools/{name}/snippet: the page script, its caching and its tag."""

from __future__ import annotations

import base64
import gzip
import hashlib
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

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
    return etag.strip('"')


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


async def test_script_is_under_budget_gzipped_and_decompresses_to_the_file(
    client: httpx.AsyncClient,
) -> None:
    response, raw = await raw_get(client, "/dni.js", GZIP)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert len(raw) < BUDGET, f"dni.js is {len(raw)} bytes gzipped, over {BUDGET}"
    assert gzip.decompress(raw) == SCRIPT.read_bytes()
    assert int(response.headers["content-length"]) == len(raw)


async def test_script_is_plain_without_gzip_in_accept_encoding(client: httpx.AsyncClient) -> None:
    for accept in ("identity", "br", "deflate, br", "gzip;q=0", "gzip; q=0.0, identity", ""):
        response, raw = await raw_get(client, "/dni.js", {"Accept-Encoding": accept})
        assert response.status_code == 200, accept
        assert "content-encoding" not in response.headers, accept
        assert raw == SCRIPT.read_bytes(), accept
    for accept in ("GZIP", "br, gzip;q=0.5", "*"):
        response, raw = await raw_get(client, "/dni.js", {"Accept-Encoding": accept})
        assert response.headers["content-encoding"] == "gzip", accept
        assert gzip.decompress(raw) == SCRIPT.read_bytes(), accept


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
    assert version == hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]
    pinned = await client.get(f"/dni.js?v={version}")
    assert pinned.status_code == 200
    assert pinned.headers["cache-control"] == LONG
    for url in ("/dni.js", "/dni.js?v=0123456789abcdef", "/dni.js?v=", f"/dni.js?v={version}x"):
        response = await client.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == SHORT, url
        assert response.content == SCRIPT.read_bytes(), url


async def test_etag_round_trip_answers_304_without_a_body(client: httpx.AsyncClient) -> None:
    version = await served_version(client)
    first = await client.get(f"/dni.js?v={version}")
    etag = first.headers["etag"]
    for tag in (etag, f"W/{etag}", "*", f'"stale", {etag}', f' "other" ,W/{etag} '):
        again = await client.get(f"/dni.js?v={version}", headers={"If-None-Match": tag})
        assert again.status_code == 304, tag
        assert again.content == b"", tag
        assert "content-encoding" not in again.headers, tag
        assert again.headers["etag"] == etag, tag
        assert again.headers["cache-control"] == LONG, tag
        assert again.headers["vary"] == "Accept-Encoding", tag
        assert again.headers["access-control-allow-origin"] == "*", tag
    for tag in ('"stale"', f'"{version}x"', "W/"):
        miss = await client.get("/dni.js", headers={"If-None-Match": tag})
        assert miss.status_code == 200, tag
        assert miss.content == SCRIPT.read_bytes(), tag


async def test_script_and_demo_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "/v1/pools/{name}/snippet" in paths
    assert "/dni.js" not in paths
    assert not [p for p in paths if p.startswith(("/demo", "/dni"))]


# --- the snippet endpoint --------------------------------------------------------------------


async def test_snippet_pins_the_served_script_with_its_integrity(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client, size=1)
    body = await snippet(client)
    version = await served_version(client)
    digest = hashlib.sha384(SCRIPT.read_bytes()).digest()
    assert body["pool"] == "default"
    assert body["src"] == f"http://calltrack.test/dni.js?v={version}"
    assert body["integrity"] == "sha384-" + base64.b64encode(digest).decode()
    _, raw = await raw_get(client, "/dni.js", GZIP)
    assert body["gzip_bytes"] == len(raw)
    # The tag's URL is the immutable one.
    src = str(body["src"]).removeprefix("http://calltrack.test")
    pinned, plain = await raw_get(client, src, IDENTITY)
    assert pinned.headers["cache-control"] == LONG
    integrity = "sha384-" + base64.b64encode(hashlib.sha384(plain).digest()).decode()
    assert body["integrity"] == integrity


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
        "integrity": plain["integrity"],
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
            version = await served_version(c)
    assert body["src"] == f"https://track.example.com/dni.js?v={version}"
    assert parse_tag(str(body["html"]))["src"] == body["src"]


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
