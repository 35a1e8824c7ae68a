"""Engine and session factories (built by the app's lifespan, never at import)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

READ_ONLY = "calltrack_read_only"  # execution option: this connection only reads


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create the async engine for a database URL (SQLite or PostgreSQL)."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    # No pool_pre_ping: with asyncpg it costs three round trips before every request. A
    # connection broken by a database restart is discarded on its first error instead.
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=3600,
        # Parameters hold callers' phone numbers and emails: never in error messages (logs).
        hide_parameters=True,
        connect_args={
            "timeout": 5,
            # A statement that outlives a minute, or a transaction left idle (its request was
            # abandoned), is ended by the server instead of holding a connection forever.
            "command_timeout": 60,
            "server_settings": {"idle_in_transaction_session_timeout": "60000"},
        },
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    # SQLite has one writer. A deferred transaction that reads and later writes can fail with
    # SQLITE_BUSY instead of waiting, so every transaction takes the write lock up front.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-only probe must not queue behind writers for the write lock (WAL readers
        # never wait), so it opens a plain deferred transaction.
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Session factory; sessions keep objects usable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)
