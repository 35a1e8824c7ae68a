"""The service with measured tweaks applied from outside, to size what app/ changes would buy.

Nothing in app/ is edited: the tweaks monkeypatch or override pieces of the real app when
`lease_bench --variant TWEAKS` starts the servers as `python -m bench.variants serve`.
TWEAKS is a comma-separated list of:

  noping      the engine without pool_pre_ping (asyncpg's ping is BEGIN; ";"; ROLLBACK:
              three round trips before every request's first statement)
  asyncdeps   get_state and get_now as `async def` dependencies (FastAPI runs a plain `def`
              dependency in the thread pool: two thread hops per request). Their code is
              swapped in place; FastAPI's dependency_overrides would re-analyse the
              override's signature on every request and cost more than it saves.
  coreinsert  the visitor session inserted with one cached Core INSERT of the table instead
              of an ORM-enabled insert(VisitorSession).values(**fields) built per request
  onestmt     a new visitor's session insert and the claim in ONE statement (a CTE more in
              front of the service's claim): one round trip instead of two
  noaccess    without the access middleware (request id, latency histogram, log record)
  autocommit  request sessions bound to the engine with isolation_level AUTOCOMMIT: no
              BEGIN and COMMIT round trips around a request's single statement (a new
              visitor's claim is one statement since 03a40f6, atomic by itself); the
              fallback path's statements then commit one by one
  raw         not the service at all: a bare ASGI app, an asyncpg pool and the onestmt
              statement in autocommit (one round trip per lease); an upper bound for
              Python on this machine, not a proposal

These are experiments for the benchmark's report, not code to ship as is. Since commit
03a40f6 the service itself has noping, asyncdeps, coreinsert (for new visitors: the
session is inserted by the claim statement) and onestmt; on that code those four tweaks
change nothing, and the ones left to measure are noaccess, autocommit and raw.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import fastapi.dependencies.models as fastapi_models
from fastapi import FastAPI, Request
from sqlalchemy import Table, insert, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import app.db.repositories.sessions as session_repo
import app.main
import app.services.leasing as leasing
from app import logs
from app.api import deps
from app.db.models import VisitorSession
from app.db.repositories.leases import _PG_CLAIM
from app.services.pools import PoolConfig
from app.settings import get_settings
from app.state import AppState

SESSION_COLUMNS = ("site_key_id", *session_repo.CONTEXT_FIELDS, *session_repo.PROSPECT_FIELDS)


def tweaks() -> set[str]:
    """The tweaks asked for in CALLTRACK_BENCH_TWEAKS."""
    raw = os.environ.get("CALLTRACK_BENCH_TWEAKS", "")
    return {t.strip() for t in raw.split(",") if t.strip()}


# ---------------------------------------------------------------------------- noping


def _engine_without_ping(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        connect_args={"timeout": 5},
    )


# ---------------------------------------------------------------------------- asyncdeps


async def _state_async(request: Request) -> AppState:
    state: AppState = request.app.state.ct
    return state


async def _now_async(state: AppState) -> datetime:
    return state.clock()


def _make_dependencies_async() -> None:
    # FastAPI's dependency_overrides would do, but it re-analyses an override's signature
    # on every request (inspect.signature: ~20% of the event loop), which hides the gain.
    # So the two functions get async code in place: same objects, same annotations, so the
    # routes' Depends(...) stay as they are; FastAPI's classification cache is cleared.
    deps.get_state.__code__ = _state_async.__code__
    deps.get_now.__code__ = _now_async.__code__
    for name in (
        "_is_coroutine_callable_cached",
        "_is_gen_callable_cached",
        "_is_async_gen_callable_cached",
    ):
        cached = getattr(fastapi_models, name, None)
        if cached is not None:
            cached.cache_clear()


# ---------------------------------------------------------------------------- coreinsert

_INSERT_SESSION = insert(cast(Table, VisitorSession.__table__))


async def _create_session_core(
    db: AsyncSession,
    *,
    session_id: str,
    now: datetime,
    site_key_id: int | None,
    fields: Mapping[str, str | None],
) -> None:
    values: dict[str, Any] = {k: fields.get(k) for k in SESSION_COLUMNS}
    values.update(id=session_id, created_at=now, last_seen_at=now, site_key_id=site_key_id)
    await db.execute(_INSERT_SESSION, values)


# ---------------------------------------------------------------------------- onestmt


def _one_statement_sql(style: str) -> str:
    """The service's claim with the session insert as its first CTE.

    style "sqlalchemy" keeps :name parameters; "asyncpg" numbers them $1.. in the order
    of ONE_STMT_PARAMS. The lease's FK to visitor_session is checked at the end of the
    statement, when the session row of the same statement is there.
    """
    claim = _PG_CLAIM.text.strip()
    assert claim.startswith("WITH pick AS")
    cols = ", ".join(("id", "created_at", "last_seen_at", *SESSION_COLUMNS))
    vals = ", ".join(f":{c}" for c in ("session_id", "now", "now", *SESSION_COLUMNS))
    sql = f"WITH s AS (INSERT INTO visitor_session ({cols}) VALUES ({vals}) RETURNING id)," + claim[
        len("WITH") :
    ].replace(
        "SELECT id, :pool_id, :session_id, :now, :until FROM pick",
        "SELECT pick.id, :pool_id, s.id, :now, :until FROM pick, s",
    )
    if style == "asyncpg":
        for i, name in enumerate(ONE_STMT_PARAMS, start=1):
            sql = sql.replace(f":{name}", f"${i}")
    return sql


ONE_STMT_PARAMS = ("session_id", "now", "pool_id", "until", "available_at", *SESSION_COLUMNS)
_ORIGINAL_ASSIGN = leasing.assign


async def _assign_one_statement(
    db: AsyncSession,
    *,
    pool: PoolConfig,
    session_id: str | None,
    fields: Mapping[str, str | None],
    site_key_id: int | None,
    is_bot: bool,
    now: datetime,
) -> leasing.Assignment:
    if is_bot or session_id is not None:
        return await _ORIGINAL_ASSIGN(
            db,
            pool=pool,
            session_id=session_id,
            fields=fields,
            site_key_id=site_key_id,
            is_bot=is_bot,
            now=now,
        )
    until = now + timedelta(seconds=pool.lease_ttl_seconds)
    params: dict[str, Any] = {k: fields.get(k) for k in SESSION_COLUMNS}
    params.update(
        session_id=leasing.new_session_id(),
        now=now,
        pool_id=pool.id,
        until=until,
        available_at=until + timedelta(seconds=pool.cooldown_seconds),
        site_key_id=site_key_id,
    )
    row = (await db.execute(_ONE_STMT, params)).first()
    if row is None:  # no number: the service's own path (a new session, retries, fallback)
        return await _ORIGINAL_ASSIGN(
            db,
            pool=pool,
            session_id=None,
            fields=fields,
            site_key_id=site_key_id,
            is_bot=is_bot,
            now=now,
        )
    return leasing.Assignment(row[1], params["session_id"], until, tracked=True)


_ONE_STMT = text(_one_statement_sql("sqlalchemy")).bindparams(
    *[p for p in _PG_CLAIM._bindparams.values()]  # the claim's typed parameters
)


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


class RawApp:
    """A bare ASGI app: POST /get_tracking_number with one autocommit statement."""

    def __init__(self) -> None:
        self.pool: Any = None
        url = get_settings().database_url.replace("postgresql+asyncpg", "postgresql")
        self.dsn = url
        self.size = get_settings().db_pool_size
        self.sql = _one_statement_sql("asyncpg")
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
        args = [session_id, now, pool_id, until, until + timedelta(seconds=cooldown)]
        args += [None] * len(SESSION_COLUMNS)
        row = await self.pool.fetchrow(self.sql, *args)
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
    known = {"noping", "asyncdeps", "coreinsert", "onestmt", "noaccess", "autocommit", "raw"}
    unknown = chosen - known
    if unknown:
        raise SystemExit(f"unknown tweaks: {sorted(unknown)}")
    if "raw" in chosen:
        return RawApp()
    if "noping" in chosen:
        app.main.make_engine = _engine_without_ping  # type: ignore[attr-defined]
    if "coreinsert" in chosen:
        session_repo.create = _create_session_core
    if "onestmt" in chosen:
        leasing.assign = _assign_one_statement
    if "autocommit" in chosen:
        app.main.make_sessionmaker = _autocommit_sessionmaker  # type: ignore[attr-defined]
    if "noaccess" in chosen:
        app.main.AccessMiddleware = _NoAccess  # type: ignore[attr-defined,assignment]
    if "asyncdeps" in chosen:
        _make_dependencies_async()
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
