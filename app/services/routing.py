"""Where calls to each number go, kept in memory so a call is routed even without the database."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from app.db.repositories.calls import NumberRoute


@dataclass(frozen=True)
class Forward:
    """Connect the caller to `destination`."""

    destination: str
    caller_id: str | None
    record: bool = False
    whisper: bool = False
    tracked: bool = True


@dataclass(frozen=True)
class Announce:
    """Say a short message and hang up: nobody to forward to."""

    message: str


Decision = Forward | Announce


class RoutingCache:
    """Tracking number -> its pool's call settings, as last read from the database."""

    # Routes are kept as plain tuples of plain values: the garbage collector stops tracking
    # those, while 100,000 tracked objects made every full collection walk them all (pauses
    # of 120-235 ms measured by bench/voice_bench.py).

    def __init__(self) -> None:
        self._routes: dict[str, tuple[Any, ...]] = {}
        self.loaded_at: float | None = None

    def get(self, e164: str) -> NumberRoute | None:
        """The last known route of a number."""
        found = self._routes.get(e164)
        return NumberRoute._make(found) if found is not None else None

    def put(self, route: NumberRoute) -> None:
        """Remember a route just read."""
        self._routes[route.e164] = tuple(route)

    def replace(self, routes: list[NumberRoute]) -> None:
        """Swap in a fresh copy of every route."""
        self._routes = {route.e164: tuple(route) for route in routes}
        self.loaded_at = time.monotonic()

    def __len__(self) -> int:
        return len(self._routes)


def decide(
    route: NumberRoute | None,
    *,
    caller: str | None,
    default_destination: str | None,
    unknown_message: str,
) -> Decision:
    """Forward to the pool's destination, else the default one, else announce and hang up."""
    if route is not None:
        return Forward(
            destination=route.destination,
            caller_id=caller,
            record=route.record_calls,
            whisper=route.whisper,
        )
    if default_destination:
        return Forward(destination=default_destination, caller_id=caller, tracked=False)
    return Announce(message=unknown_message)
