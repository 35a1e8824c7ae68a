"""The page snippet, `dni.js`: what every page of a customer's site loads; and the call
widget it loads on first use (`webcall.js`, its stylesheet and the JsSIP bundle)."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response

from app import assets

router = APIRouter(tags=["snippet"], include_in_schema=False)

# Sites load the script from another origin: with `crossorigin` (for Subresource
# Integrity) the browser needs CORS on it, and a page isolated with COEP needs CORP.
_SHARED = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}

# Every path served here is left out of ApiCors (app/middleware.py), which would vary
# this one answer by Origin.


def _serve(request: Request, item: assets.Asset) -> Response:
    """An asset, cached for a year under its versioned URL (`?v=<version>`), else briefly."""
    pinned = request.query_params.get("v") == item.version
    return assets.serve(
        request,
        item,
        cache_control=assets.LONG_CACHE if pinned else assets.SHORT_CACHE,
        headers=_SHARED,
    )


@cache
def jssip() -> assets.Asset:
    """The vendored JsSIP bundle (scripts/build-webcall), served byte for byte: a minified
    file gains nothing from compacting, and its template literals must stay as built."""
    body = resources.files("app").joinpath("static", "vendor", "jssip.min.js").read_bytes()
    return assets.make_asset("jssip.min.js", body)


@cache
def webcall() -> assets.Asset:
    """The widget, naming the bundle's version so that it loads it from its immutable URL."""
    template = assets.asset("webcall.js").body
    return assets.make_asset(
        "webcall.js", template.replace(b"{{jssip_version}}", jssip().version.encode())
    )


@router.api_route("/dni.js", methods=["GET", "HEAD"])
async def dni_js(request: Request) -> Response:
    """The snippet; cached for a year under its versioned URL (`?v=<version>`)."""
    return _serve(request, assets.asset("dni.js"))


@router.api_route("/webcall.js", methods=["GET", "HEAD"])
async def webcall_js(request: Request) -> Response:
    """The "call from your browser" widget, which dni.js loads on first use."""
    return _serve(request, webcall())


@router.api_route("/webcall.css", methods=["GET", "HEAD"])
async def webcall_css(request: Request) -> Response:
    """The widget's stylesheet (classes `ct-webcall-*`)."""
    return _serve(request, assets.asset("webcall.css"))


@router.api_route("/webcall/jssip.min.js", methods=["GET", "HEAD"])
async def jssip_js(request: Request) -> Response:
    """JsSIP (MIT), bundled from npm; webcall.js asks for it under `?v=<version>`."""
    return _serve(request, jssip())
