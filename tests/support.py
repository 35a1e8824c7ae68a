"""Test helpers: databases built by the migrations, a fake clock, admin credentials."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg

from app.db import migrate

T = TypeVar("T")

ADMIN_TOKEN = "test-admin-token-5f2b9c1e7a"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WEBHOOK_TOKEN = "test-webhook-token-3c8d1f6b2e"
DOMAIN = "calltrack.emulator"
BACKENDS = [
    b.strip()
    for b in os.environ.get("CALLTRACK_TEST_BACKENDS", "sqlite,postgresql").split(",")
    if b.strip()
]
PG_HOST = os.environ.get("CALLTRACK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("CALLTRACK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("CALLTRACK_TEST_PG_USER", "postgres")


def run_coro(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a private loop, even from inside a running loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def _pg_exec(sql: str) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_url(name: str) -> str:
    """SQLAlchemy URL of a PostgreSQL test database."""
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def pg_create(name: str, template: str | None = None) -> str:
    """Create a PostgreSQL database (from a template) and return its URL."""
    clause = f' TEMPLATE "{template}"' if template else ""
    run_coro(_pg_exec(f'CREATE DATABASE "{name}"{clause}'))
    return pg_url(name)


def pg_drop(name: str) -> None:
    """Drop a PostgreSQL test database, closing its connections."""
    run_coro(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(path: Path) -> str:
    """SQLAlchemy URL of a SQLite file."""
    return f"sqlite+aiosqlite:///{path}"


class Templates:
    """One migrated database per backend; each test gets a fresh copy."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.pg_template: str | None = None
        self.sqlite_template: Path | None = None

    def fresh(self, backend: str) -> tuple[str, str]:
        """A new migrated database: (url, handle to drop it)."""
        if backend == "sqlite":
            if self.sqlite_template is None:
                self.sqlite_template = self.workdir / "template.db"
                migrate.upgrade(sqlite_url(self.sqlite_template))
            path = self.workdir / f"t_{uuid.uuid4().hex[:12]}.db"
            shutil.copyfile(self.sqlite_template, path)
            return sqlite_url(path), str(path)
        if self.pg_template is None:
            self.pg_template = f"ct_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            migrate.upgrade(pg_create(self.pg_template))
        name = f"ct_t_{uuid.uuid4().hex[:16]}"
        return pg_create(name, self.pg_template), name

    def dispose(self, backend: str, handle: str) -> None:
        """Drop a database made by fresh()."""
        if backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(handle + suffix).unlink(missing_ok=True)
        else:
            pg_drop(handle)

    def close(self) -> None:
        """Drop the templates."""
        if self.pg_template:
            pg_drop(self.pg_template)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        """The current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += timedelta(seconds=seconds)
