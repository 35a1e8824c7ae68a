"""Helpers both benchmark harnesses use: progress lines, wrk's result, medians, signals."""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any


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
