"""The page snippet, `dni.js`: what every page of a customer's site loads."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app import assets

router = APIRouter(tags=["snippet"], include_in_schema=False)

# Sites load the script from another origin: with `crossorigin` (for Subresource
# Integrity) the browser needs CORS on it, and a page isolated with COEP needs CORP.
_SHARED = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}


@router.api_route("/dni.js", methods=["GET", "HEAD"])
async def dni_js(request: Request) -> Response:
    """The snippet; cached for a year under its versioned URL (`?v=<version>`)."""
    script = assets.asset("dni.js")
    pinned = request.query_params.get("v") == script.version
    return assets.serve(
        request,
        script,
        cache_control=assets.LONG_CACHE if pinned else assets.SHORT_CACHE,
        headers=_SHARED,
    )
