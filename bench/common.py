"""Helpers the benchmark harnesses share: psql, progress lines, wrk's result, medians, signals."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
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


def machine_ticks() -> tuple[int, int]:
    """The machine's (busy, total) CPU ticks since boot; idle and iowait are not busy."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    total = sum(fields[:8])
    return total - fields[3] - fields[4], total


def busy_cores(seconds: float = 1.0) -> float:
    """How many cores were busy, machine-wide, over the next `seconds`."""
    busy0, total0 = machine_ticks()
    time.sleep(seconds)
    busy1, total1 = machine_ticks()
    return (busy1 - busy0) / max(1, total1 - total0) * (os.cpu_count() or 1)


def wait_calm(max_load: float, calm_wait: float, *, pause: float) -> dict[str, Any]:
    """Before a measured run: wait (at most `calm_wait` s) until the 1-minute load average is
    at most `max_load` and one second passes with under 0.3 cores busy (idle servers and
    PostgreSQL included). Returns what it saw, kept with the run."""
    started = time.monotonic()
    while True:
        load = os.getloadavg()
        busy = busy_cores()
        calm = load[0] <= max_load and busy < 0.3
        if calm or time.monotonic() - started >= calm_wait:
            if not calm:
                log(f"still busy after {calm_wait} s (load {load[0]:.2f}, {busy:.2f} cores)")
            return {
                "load": [round(v, 2) for v in load],
                "busy_cores": round(busy, 2),
                "waited_s": round(time.monotonic() - started, 1),
                "calm": calm,
            }
        time.sleep(pause)


def keep_result(prefix: str, record: dict[str, Any]) -> None:
    """Tag a run with the commit it measured, keep it in bench/results/, print it."""
    root = Path(__file__).resolve().parents[1]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    record = {"commit": commit, **record}
    out = root / "bench" / "results" / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    json.dump(record, sys.stdout, indent=2)
    print()
