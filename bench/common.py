"""Helpers the benchmark harnesses share: psql, progress lines, wrk's result, medians, signals."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol


class PgTarget(Protocol):
    """Where a harness's PostgreSQL is: its (frozen) config carries these."""

    @property
    def pg_host(self) -> str: ...
    @property
    def pg_port(self) -> int: ...
    @property
    def pg_user(self) -> str: ...
    @property
    def database(self) -> str: ...


def psql(target: PgTarget, sql: str, *, database: str, timeout: float) -> str:
    """Run SQL (statements or a psql script, fed on stdin) with psql; its unaligned output."""
    out = subprocess.run(
        [
            "psql",
            "-h",
            target.pg_host,
            "-p",
            str(target.pg_port),
            "-U",
            target.pg_user,
            "-d",
            database,
            "-AtXq",
            "-v",
            "ON_ERROR_STOP=1",
            "-f",
            "-",
        ],
        input=sql,
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return out.stdout.strip()


def sqlalchemy_url(target: PgTarget) -> str:
    """The service's database URL for the bench database."""
    return (
        f"postgresql+asyncpg://{target.pg_user}@{target.pg_host}:{target.pg_port}/{target.database}"
    )


def median(values: Sequence[float]) -> float:
    """The median, 0 for no values."""
    return float(statistics.median(values)) if values else 0.0


def wrk_json(stdout: str) -> dict[str, Any]:
    """The JSON line the Lua scripts print after a wrk run."""
    for line in stdout.splitlines():
        if line.startswith("BENCHJSON "):
            parsed: dict[str, Any] = json.loads(line[len("BENCHJSON ") :])
            return parsed
    raise RuntimeError(f"wrk printed no result:\n{stdout}")


def log(message: str) -> None:
    """A timestamped progress line on stderr."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def terminate(signum: int, _frame: object) -> None:
    """SIGTERM handler: unwind like Ctrl-C, so servers and databases are cleaned up."""
    raise KeyboardInterrupt(f"signal {signum}")
