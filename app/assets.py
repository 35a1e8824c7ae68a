"""Static files the service ships (the page snippet, the demo): loaded once, served with
validators, long caching for versioned URLs, and gzip when the client takes it."""

from __future__ import annotations

import base64
import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
}
SHORT_CACHE = "public, max-age=300"
LONG_CACHE = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One file's bytes, its gzip and the digests that name its version."""

    name: str
    body: bytes
    gzipped: bytes
    media_type: str
    version: str
    integrity: str

    @property
    def etag(self) -> str:
        """A strong validator: the content digest."""
        return f'"{self.version}"'


def make_asset(name: str, body: bytes) -> Asset:
    """An asset from bytes (a template filled in at start, say)."""
    suffix = name[name.rfind(".") :]
    return Asset(
        name=name,
        body=body,
        # mtime=0: the same bytes give the same gzip on every start and every server.
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        media_type=_TYPES.get(suffix, "application/octet-stream"),
        version=hashlib.sha256(body).hexdigest()[:16],
        integrity="sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode(),
    )


def compact_js(source: bytes) -> bytes:
    """Scripts as served: whole-line comments, blank lines and indentation dropped.

    Line breaks stay, so automatic semicolon insertion reads the code as written; the
    scripts use no template literals or multi-line strings, whose text this would change.
    """
    kept = (line.strip() for line in source.decode().splitlines())
    return "\n".join(line for line in kept if line and not line.startswith("//")).encode() + b"\n"


@cache
def asset(name: str) -> Asset:
    """A file of app/static, read once per process (scripts compacted)."""
    body = resources.files("app").joinpath("static", name).read_bytes()
    return make_asset(name, compact_js(body) if name.endswith(".js") else body)


def _accepts_gzip(request: Request) -> bool:
    # RFC 9110: an encoding named explicitly wins over `*`; q=0 (in any spelling) refuses.
    weights: dict[str, float] = {}
    for part in request.headers.get("accept-encoding", "").lower().split(","):
        coding, *params = (piece.strip() for piece in part.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        if coding:
            weights[coding] = weight
    return weights.get("gzip", weights.get("*", 0.0)) > 0


def _matches(request: Request, etag: str) -> bool:
    wanted = request.headers.get("if-none-match", "")
    return wanted.strip() == "*" or any(
        tag.strip().removeprefix("W/") == etag for tag in wanted.split(",")
    )


def serve(
    request: Request, item: Asset, *, cache_control: str, headers: dict[str, str] | None = None
) -> Response:
    """The asset, or 304 when the client holds this version; gzip when accepted."""
    gzipped = _accepts_gzip(request)
    # Each encoding is its own representation, with its own strong validator (RFC 9110).
    etag = f'"{item.version}-gz"' if gzipped else item.etag
    common = {
        "ETag": etag,
        "Cache-Control": cache_control,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        **(headers or {}),
    }
    if _matches(request, etag):
        return Response(status_code=304, headers=common)
    if gzipped:
        return Response(
            item.gzipped,
            media_type=item.media_type,
            headers={**common, "Content-Encoding": "gzip"},
        )
    return Response(item.body, media_type=item.media_type, headers=common)
