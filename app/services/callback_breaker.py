"""The callback worker's circuit breaker: platform failures in a row pause the worker."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

log = logging.getLogger("calltrack.callbacks")

# Consecutive platform failures after which the worker stops claiming for a while.
TRIP_AFTER = 3
MAX_PAUSE = 300.0


class Breaker:
    """Counts platform failures in a row; from TRIP_AFTER on, the worker pauses."""

    def __init__(self, rand: Callable[[], float] = random.random) -> None:
        self.failures = 0
        self.paused_until = 0.0
        self._rand = rand

    def paused(self) -> float:
        """Seconds of pause left (0 when working)."""
        return max(0.0, self.paused_until - time.monotonic())

    def succeeded(self) -> None:
        """The platform answered: start counting again."""
        self.failures = 0

    def failed(self, retry_after: float | None) -> float:
        """Count a failure; the seconds the failed request should wait."""
        self.failures += 1
        # Capped exponents: a weekend-long outage must not overflow the float.
        n = min(self.failures, 16)
        wait = max(retry_after or 0.0, min(MAX_PAUSE, 2.0**n) * (0.5 + self._rand()))
        if self.failures >= TRIP_AFTER:
            pause = min(MAX_PAUSE, 5.0 * 2.0 ** (n - TRIP_AFTER)) * (0.5 + self._rand())
            pause = max(pause, retry_after or 0.0)
            self.paused_until = time.monotonic() + pause
            log.warning(
                "voice platform failing (%d in a row): the callback worker pauses %.0f s",
                self.failures,
                pause,
            )
        return wait
