"""The emulator's configuration: who may call its REST API and where the service lives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx


def utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(UTC)


@dataclass
class EmulatorConfig:
    """How the emulated Cloudonix behaves and whom it talks to.

    `speed` is virtual seconds per real second; every time the emulator reports is virtual:
    `clock()` when a call is created plus the virtual seconds its script has played.
    """

    api_key: str
    domain: str
    webhook_token: str
    # None: scheme://host of the request that created the call (right when mounted inside
    # the service, whose own address is then the one the request came in on).
    service_url: str | None = None
    rate_requests: int = 10
    rate_period: float = 10.0
    speed: float = 1.0
    clock: Callable[[], datetime] = field(default=utc_now)
    transport: httpx.AsyncBaseTransport | None = None
    # Bound of real seconds any request to the service may take.
    http_timeout: float = 10.0
    # Ended calls kept for GET; the oldest are forgotten beyond this.
    keep_calls: int = 1000

    def __post_init__(self) -> None:
        if self.speed <= 0:
            raise ValueError("speed must be positive")
        if self.rate_requests < 1 or self.rate_period <= 0:
            raise ValueError("rate_requests must be >= 1 and rate_period > 0")
