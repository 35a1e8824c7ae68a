"""ASGI middleware: request ids, access log, latency metrics, the emulator's guard."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import secrets
import time

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import Metrics

_log = logging.getLogger("calltrack.access")


def route_template(scope: Scope) -> str:
    """The matched route's path template ('/v1/pools/{name}'), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessMiddleware:
    """Time each request, count it by route template and log it without personal data."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Wrap one HTTP request."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            self.metrics.latency.labels(scope["method"], route, str(status)).observe(elapsed)
            _log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": request_id,
                },
            )


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")[:64]
            if candidate.replace("-", "").isalnum():
                return candidate
    return secrets.token_hex(8)


def local_or_admin(scope: Scope, admin_token: bytes | None) -> bool:
    """Whether a request comes from this machine or carries the admin token."""
    client = scope.get("client")
    if client:
        try:
            if ipaddress.ip_address(client[0]).is_loopback:
                return True
        except ValueError:
            pass
    headers = dict(scope.get("headers") or [])
    scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
    return (
        admin_token is not None
        and scheme.lower() == b"bearer"
        and hmac.compare_digest(token.strip(), admin_token)
    )


# Served by app/api/snippet.py with `Access-Control-Allow-Origin: *` of their own.
_PUBLIC_SCRIPTS = frozenset({"/dni.js", "/webcall.js", "/webcall.css", "/webcall/jssip.min.js"})


class ApiCors(CORSMiddleware):
    """CORS for the API, from the configured origins only.

    `/dni.js` and the call widget it loads (`/webcall.js`, `/webcall.css`,
    `/webcall/jssip.min.js`) are left out: they are public, loaded by every site, and cached
    for long by browsers and CDNs. Their own `Access-Control-Allow-Origin: *` is one answer
    for all; the middleware would rewrite it per origin, and a CDN that ignores
    `Vary: Origin` would then hand one site's header to the next.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the snippet through untouched; everything else gets CORS."""
        if scope["type"] == "http" and scope["path"] in _PUBLIC_SCRIPTS:
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class EmulatorGuard:
    """Let only this machine, or an ops caller, drive the mounted emulator's control API.

    Its control endpoints place calls into our own webhooks without credentials; they
    stand for "a person dials", which only a developer on this machine or an operator
    should be able to fake. The emulated REST API checks its own bearer key.
    """

    # The emulated REST API (calls, recordings, subscribers) checks its own key; the SIP
    # socket checks each subscriber's digest.
    _OPEN = ("/calls/", "/recordings/", "/customers/")

    def __init__(self, app: ASGIApp, *, admin_token: str | None) -> None:
        self.app = app
        self._admin = admin_token.encode() if admin_token else None

    def _allowed(self, scope: Scope) -> bool:
        path = str(scope.get("path", ""))
        return any(part in path for part in self._OPEN) or local_or_admin(scope, self._admin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a control request from elsewhere with a 403 problem."""
        if scope["type"] != "http" or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "type": "urn:calltrack:problem:forbidden",
                "title": "Forbidden",
                "status": 403,
                "detail": "the emulator's control API answers this machine, or the admin token",
                "field": "authorization",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/problem+json")],
            }
        )
        await send({"type": "http.response.body", "body": body})
