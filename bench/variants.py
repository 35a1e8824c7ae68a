"""The service with measured tweaks applied from outside, to size what app/ changes would buy.

Nothing in app/ is edited: the tweaks monkeypatch or override pieces of the real app when
`lease_bench --variant TWEAKS` starts the servers as `python -m bench.variants serve`.
TWEAKS is a comma-separated list of:

  noaccess    without the access middleware (request id, latency histogram, log record)
  autocommit  request sessions bound to the engine with isolation_level AUTOCOMMIT: no
              BEGIN and COMMIT round trips around a request's single statement (a new
              visitor's claim is one statement since 03a40f6, atomic by itself); the
              fallback path's statements then commit one by one
  raw         not the service at all: a bare ASGI app, an asyncpg pool and the service's
              own new-visitor statement in autocommit (one round trip per lease); an upper
              bound for Python on this machine, not a proposal

These are experiments for the benchmark's report, not code to ship as is. The tweaks
noping, asyncdeps, coreinsert and onestmt measured at 33178fe (bench/README.md) went into the
service itself in 03a40f6 and were removed from here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

import app.main
from app import logs
from app.db.repositories.leases import _PG_CLAIM_NEW_SESSION
from app.settings import get_settings


def tweaks() -> set[str]:
    """The tweaks asked for in CALLTRACK_BENCH_TWEAKS."""
    raw = os.environ.get("CALLTRACK_BENCH_TWEAKS", "")
    return {t.strip() for t in raw.split(",") if t.strip()}


# ---------------------------------------------------------------------------- autocommit


def _autocommit_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine.execution_options(isolation_level="AUTOCOMMIT"),
        expire_on_commit=False,
        autoflush=False,
    )


# ---------------------------------------------------------------------------- raw

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def _numbered(sql: str) -> tuple[str, list[str]]:
    """The statement with asyncpg's $1.. placeholders, and the parameter name of each."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r":([a-z_]+)", number, sql), names


class RawApp:
    """A bare ASGI app: POST /get_tracking_number with one autocommit statement."""

    def __init__(self) -> None:
        self.pool: Any = None
        url = get_settings().database_url.replace("postgresql+asyncpg", "postgresql")
        self.dsn = url
        self.size = get_settings().db_pool_size
        self.sql, self.params = _numbered(_PG_CLAIM_NEW_SESSION.text)
        self.pools: dict[str, tuple[int, int, int, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request or the lifespan."""
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.pool = await asyncpg.create_pool(
                        self.dsn, min_size=self.size, max_size=self.size
                    )
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/readyz":
            await _respond(send, 200, {"status": "ready"})
            return
        name = json.loads(body or b"{}").get("pool", "default")
        pool_id, ttl, cooldown, fallback = await self._pool(name)
        now = datetime.now(UTC)
        until = now + timedelta(seconds=ttl)
        session_id = secrets.token_urlsafe(18)
        values: dict[str, Any] = {
            "s_id": session_id,
            "s_created_at": now,
            "s_last_seen_at": now,
            "session_id": session_id,
            "pool_id": pool_id,
            "now": now,
            "until": until,
            "available_at": until + timedelta(seconds=cooldown),
        }
        row = await self.pool.fetchrow(self.sql, *(values.get(p) for p in self.params))
        tracked = row is not None
        await _respond(
            send,
            200,
            {
                "status": "success",
                "phonenumber": (row[1] if tracked else fallback).lstrip("+"),
                "session_id": session_id if tracked else None,
                "expires_at": until.isoformat() if tracked else None,
                "tracked": tracked,
            },
        )

    async def _pool(self, name: str) -> tuple[int, int, int, str]:
        if name not in self.pools:
            row = await self.pool.fetchrow(
                "SELECT id, lease_ttl_seconds, cooldown_seconds, fallback_number"
                " FROM pool WHERE name = $1",
                name,
            )
            self.pools[name] = (row[0], row[1], row[2], row[3])
        return self.pools[name]


async def _respond(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": data})


# ---------------------------------------------------------------------------- factory


def create_app() -> Any:
    """The service (or the raw bound) with the tweaks of CALLTRACK_BENCH_TWEAKS."""
    chosen = tweaks()
    known = {"noaccess", "autocommit", "raw"}
    unknown = chosen - known
    if unknown:
        raise SystemExit(f"unknown tweaks: {sorted(unknown)}")
    if "raw" in chosen:
        return RawApp()
    if "autocommit" in chosen:
        app.main.make_sessionmaker = _autocommit_sessionmaker  # type: ignore[attr-defined]
    if "noaccess" in chosen:
        app.main.AccessMiddleware = _NoAccess  # type: ignore[attr-defined,assignment]
    application: FastAPI = app.main.create_app()
    return application


class _NoAccess:
    def __init__(self, app: Any, metrics: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.variants serve --host H --port P [--workers N]`."""
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.variants")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    settings = get_settings()
    logs.configure(settings.log_level)
    uvicorn.run(
        "bench.variants:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_config=None,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
