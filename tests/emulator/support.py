"""A tiny stand-in for the service that records what the emulator sends it, and helpers."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

START = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)
API_KEY = "XI0123456789abcdef0123456789abcd"
DOMAIN = "calltrack.emulator"
WEBHOOK_TOKEN = "emulator-test-webhook-token-7d1c"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
VOICE = "/webhooks/cloudonix/voice"
UPDATES = "/webhooks/cloudonix/session-update"
CDR = "/webhooks/cloudonix/cdr"
# Real seconds any test waits for a call to end.
BOUND = 5.0


def fixed_clock() -> datetime:
    """The emulator's clock in tests: always START."""
    return START


@dataclass
class Hit:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: Any


class Receiver:
    """Records every request; answers scripted CXML per path, else 204."""

    def __init__(self, extra_routes: list[BaseRoute] | None = None) -> None:
        self.hits: list[Hit] = []
        self.cxml: dict[str, str] = {}
        self.status: dict[str, int] = {}
        routes = [
            *(extra_routes or []),
            Route("/{path:path}", self._handle, methods=["GET", "POST"]),
        ]
        self.app = Starlette(routes=routes)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw else None
        path = request.url.path
        hit = Hit(request.method, path, dict(request.headers), dict(request.query_params), body)
        self.hits.append(hit)
        status = self.status.get(path, 200)
        if path in self.cxml:
            return Response(self.cxml[path], status, media_type="application/xml")
        return Response(status_code=204 if status == 200 else status)

    def on(self, path: str) -> list[Hit]:
        """The requests made to `path`, in order."""
        return [hit for hit in self.hits if hit.path == path]

    def updates(self, token: str | None = None) -> list[dict[str, Any]]:
        """Every session update event received, lists flattened."""
        events: list[dict[str, Any]] = []
        for hit in self.on(UPDATES):
            events.extend(hit.body if isinstance(hit.body, list) else [hit.body])
        return [event for event in events if token is None or event["token"] == token]


async def eventually(condition: Callable[[], object]) -> None:
    """Wait (bounded) until `condition()` holds; nothing to await on offers it."""
    async with asyncio.timeout(BOUND):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def ended(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """Poll the control API until the call has ended; its outcome."""
    async with asyncio.timeout(BOUND):
        while True:
            response = await client.get(f"/emulator/inbound/{token}")
            outcome: dict[str, Any] = response.json()
            if outcome["state"] == "ended":
                return outcome
            await asyncio.sleep(0.01)


async def dialling(client: httpx.AsyncClient, token: str) -> dict[str, Any]:
    """Poll the control API until the call has started its <Dial>; its outcome."""
    async with asyncio.timeout(BOUND):
        while True:
            outcome: dict[str, Any] = (await client.get(f"/emulator/inbound/{token}")).json()
            if outcome["dial"] is not None:
                return outcome
            await asyncio.sleep(0.01)


async def until(client: httpx.AsyncClient, token: str, status: str) -> dict[str, Any]:
    """Poll the REST session until it reaches `status`."""
    async with asyncio.timeout(BOUND):
        while True:
            response = await client.get(f"/emulator/calls/{DOMAIN}/sessions/{token}", headers=AUTH)
            session: dict[str, Any] = response.json()
            if session["status"] == status:
                return session
            await asyncio.sleep(0.01)


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free 127.0.0.1 port; its base URL."""
    # IPPROTO_TCP named: asyncio then turns Nagle off on accepted connections, as uvicorn
    # does for the sockets it binds (else each kept-alive request waits ~40 ms for an ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", ws="none", http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)
        sock.close()
