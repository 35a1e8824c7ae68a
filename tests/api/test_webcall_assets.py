"""The call widget's files: the JsSIP bundle built from npm (pinned, licensed, checked in)
and /webcall.js, /webcall.css, /webcall/jssip.min.js served as /dni.js is."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import httpx
import pytest

from app.api import snippet as routes
from app.assets import compact_js
from tests.api.test_snippet import GZIP, IDENTITY, LONG, SHOP, SHORT, cors_client, vary
from tests.support import FakeClock

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "app" / "static"
BUNDLE = STATIC / "vendor" / "jssip.min.js"
LICENSE = STATIC / "vendor" / "jssip.LICENSE.txt"
JSSIP = "3.13.8"
WIDGET = ("/webcall.js", "/webcall.css", "/webcall/jssip.min.js")
PUBLIC = ("/dni.js", *WIDGET)


def package_json() -> dict[str, object]:
    loaded: dict[str, object] = json.loads((ROOT / "package.json").read_text())
    return loaded


def lock() -> dict[str, dict[str, dict[str, object]]]:
    loaded: dict[str, dict[str, dict[str, object]]] = json.loads(
        (ROOT / "package-lock.json").read_text()
    )
    return loaded


# --- the bundle and its pins -----------------------------------------------------------------


def test_package_json_pins_jssip_and_esbuild_exactly() -> None:
    manifest = package_json()
    assert manifest["private"] is True
    dev = manifest["devDependencies"]
    assert isinstance(dev, dict)
    assert dev["jssip"] == JSSIP
    assert re.fullmatch(r"0\.28\.\d+", dev["esbuild"]), "esbuild pinned exactly, 0.28.x"
    assert "dependencies" not in manifest, "nothing of npm is needed at runtime"


def test_package_lock_holds_the_versions_package_json_names() -> None:
    dev = package_json()["devDependencies"]
    assert isinstance(dev, dict)
    packages = lock()["packages"]
    assert packages[""]["devDependencies"] == dev
    for name, version in dev.items():
        locked = packages[f"node_modules/{name}"]
        assert locked["version"] == version, name
        assert str(locked["integrity"]).startswith("sha512-"), name


def test_the_bundle_is_the_jssip_the_lock_pins() -> None:
    body = BUNDLE.read_text(encoding="ascii")
    version = lock()["packages"]["node_modules/jssip"]["version"]
    assert version == JSSIP
    header = body[: body.index("*/") + 2]
    # The header names the package, its version and its license...
    assert header.startswith(f"/*! JsSIP {version} (npm package jssip@{version}), MIT License")
    assert "jssip.LICENSE.txt" in header
    assert "scripts/build-webcall" in header
    # ...and the code is of that version: JsSIP bundles its own package.json.
    assert 'name:"jssip",title:"JsSIP"' in body
    assert re.findall(r'name:"jssip",title:"JsSIP",[^}]*?version:"([\d.]+)"', body) == [version]
    # An IIFE that defines the global JsSIP, and nothing fetched from elsewhere.
    assert "var JsSIP=(()=>{" in body
    assert "require(" not in body
    assert "eval(" not in body
    assert "new Function" not in body


def test_every_bundled_package_is_named_with_its_license_text() -> None:
    body = BUNDLE.read_text(encoding="ascii")
    header = body[: body.index("*/")]
    text = LICENSE.read_text(encoding="utf-8")
    packages = lock()["packages"]
    bundled = re.findall(r"([a-z@/-]+)@([\d.]+) \((MIT)\)", header)
    assert bundled, header
    for name, version, license_name in [("jssip", JSSIP, "MIT"), *bundled]:
        if name != "jssip":
            assert packages[f"node_modules/{name}"]["version"] == version, name
        assert f"\n{name} {version} ({license_name})\n" in text, name
    assert text.count("Permission is hereby granted") == len(bundled) + 1
    assert "José Luis Millán" in text


def test_the_build_script_and_make_target_exist() -> None:
    script = ROOT / "scripts" / "build-webcall"
    assert script.stat().st_mode & 0o111, "scripts/build-webcall is executable"
    source = script.read_text()
    assert "npm ci" in source
    for flag in ("--bundle", "--minify", "--format=iife", "--global-name=JsSIP"):
        assert flag in source, flag
    assert "--platform=browser" in source
    assert re.search(
        r"^webcall-assets:.*\n\tscripts/build-webcall$", (ROOT / "Makefile").read_text(), re.M
    )
    assert "node_modules/" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_widget_source_survives_compaction_and_logs_no_secret() -> None:
    source = (STATIC / "webcall.js").read_text()
    # compact_js strips indentation: a template literal's text would change.
    assert "`" not in source
    assert "console.log" not in source
    assert "{{jssip_version}}" in source
    # Everything it styles is scoped.
    css = re.sub(r"/\*.*?\*/", "", (STATIC / "webcall.css").read_text(), flags=re.S)
    selectors = re.findall(r"([^{}]+)\{[^}]*\}", css)
    assert selectors
    for selector in selectors:
        for part in selector.split(","):
            assert part.strip().startswith(".ct-webcall"), part


# --- serving ---------------------------------------------------------------------------------


def expected(path: str) -> bytes:
    """What the service sends for one of the widget's paths."""
    if path == "/webcall/jssip.min.js":
        return BUNDLE.read_bytes()  # as built: not compacted
    if path == "/webcall.js":
        version = routes.jssip().version
        return compact_js((STATIC / "webcall.js").read_bytes()).replace(
            b"{{jssip_version}}", version.encode()
        )
    return (STATIC / "webcall.css").read_bytes()


@pytest.mark.parametrize("path", WIDGET)
async def test_widget_files_are_served_as_the_snippet_is(
    client: httpx.AsyncClient, path: str
) -> None:
    kind = "text/css" if path.endswith(".css") else "text/javascript"
    plain = await client.get(path, headers=IDENTITY)
    assert plain.status_code == 200
    assert plain.content == expected(path)
    assert plain.headers["content-type"] == f"{kind}; charset=utf-8"
    assert plain.headers["access-control-allow-origin"] == "*"
    assert plain.headers["cross-origin-resource-policy"] == "cross-origin"
    assert plain.headers["x-content-type-options"] == "nosniff"
    assert plain.headers["vary"] == "Accept-Encoding"
    assert plain.headers["cache-control"] == SHORT
    async with client.stream("GET", path, headers=GZIP) as response:
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == expected(path)
    # Revalidation, and the long-cached versioned URL.
    etag = plain.headers["etag"]
    again = await client.get(path, headers={**IDENTITY, "If-None-Match": etag})
    assert again.status_code == 304
    version = etag.strip('"')
    pinned = await client.get(f"{path}?v={version}", headers=IDENTITY)
    assert pinned.headers["cache-control"] == LONG
    other = await client.get(f"{path}?v=0123456789abcdef", headers=IDENTITY)
    assert other.headers["cache-control"] == SHORT
    head = await client.head(path)
    assert head.status_code == 200
    assert head.content == b""


async def test_the_widget_asks_for_the_bundle_under_its_immutable_url(
    client: httpx.AsyncClient,
) -> None:
    widget = (await client.get("/webcall.js")).text
    bundle = await client.get("/webcall/jssip.min.js", headers=IDENTITY)
    version = bundle.headers["etag"].strip('"')
    assert "{{" not in widget
    assert f'var JSSIP_VERSION = "{version}";' in widget
    assert '"/webcall/jssip.min.js?v=" + JSSIP_VERSION' in widget
    assert (await client.get(f"/webcall/jssip.min.js?v={version}")).headers["cache-control"] == LONG


async def test_widget_routes_are_not_in_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [p for p in paths if p.startswith("/webcall")]
    assert "/web_to_call" in paths


async def test_with_cors_origins_the_widget_keeps_its_one_answer_for_all(
    database_url: str, clock: FakeClock
) -> None:
    async with cors_client(database_url, clock) as c:
        for path in PUBLIC:
            for origin in (SHOP, "https://evil.example", None):
                headers = {"Origin": origin} if origin else {}
                response = await c.get(path, headers=headers)
                assert response.status_code == 200, (path, origin)
                assert response.headers["access-control-allow-origin"] == "*", (path, origin)
                assert vary(response) == ["accept-encoding"], (path, origin)
