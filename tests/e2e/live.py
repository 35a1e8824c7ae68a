"""The whole service on a real 127.0.0.1 port: API, webhooks and the mounted emulator."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.state import Clock
from tests.conftest import make_settings
from tests.support import run_coro

BOUND = 30.0  # seconds any wait in these tests may take


async def eventually(condition: Callable[[], object], *, within: float = BOUND) -> None:
    """Wait until `condition()` holds, at most `within` seconds."""
    async with asyncio.timeout(within):
        # Polling: the conditions live in other tasks and servers that signal nothing.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


@asynccontextmanager
async def live_service(
    database_url: str, clock: Clock, **overrides: Any
) -> AsyncIterator[tuple[str, FastAPI]]:
    """Serve the app (emulator mounted) with uvicorn; its base URL and the app."""
    # WebSockets only where a test asks (ws="websockets-sansio": the emulator's SIP socket).
    ws = str(overrides.pop("ws", "none"))
    # IPPROTO_TCP named: asyncio then turns Nagle off on accepted connections, as uvicorn
    # does for the sockets it binds (else each kept-alive request waits ~40 ms for an ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    values: dict[str, Any] = {"emulator_url": f"{base}/emulator", "emulator_speed": 100.0}
    values.update(overrides)
    app = create_app(make_settings(database_url, **values), clock=clock)
    config = uvicorn.Config(app, lifespan="on", log_config=None, ws=ws, http="h11")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started or task.done())
        if task.done():
            task.result()
        yield base, app
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, BOUND)
        sock.close()


async def _pg(sql: str, *args: object) -> None:
    import asyncpg

    from tests.support import PG_HOST, PG_PORT, PG_USER

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql, *args)
    finally:
        await conn.close()


@contextmanager
def outage(backend: str, database_url: str) -> Iterator[None]:
    """Make the database unusable for the service, then bring it back.

    PostgreSQL: the database refuses connections and its sessions are killed. SQLite: another
    process holds the write lock, so every write waits (as on a stalled disk).
    """
    if backend == "postgresql":
        name = database_url.rsplit("/", 1)[1]
        run_coro(_pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
        kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1"
        run_coro(_pg(kill + " AND pid <> pg_backend_pid()", name))
        try:
            yield
        finally:
            run_coro(_pg(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        return
    path = database_url.split(":///", 1)[1]
    blocker = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        yield
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
