"""Scripted answers for the REST API, so clients can be tested against 429s, 5xx and slowness."""

from __future__ import annotations

from collections import deque

from app.emulator.models import Fault, Json


class FaultQueue:
    """The answers scripted for the next originate requests, and how many were seen."""

    def __init__(self) -> None:
        self.originate: deque[Fault] = deque()
        # Originate requests past the bearer and domain checks, faulted or not.
        self.originate_seen = 0

    def replace(self, originate: list[Fault]) -> None:
        """Script the next originate answers, dropping any left over."""
        self.originate = deque(originate)

    def clear(self) -> None:
        """No scripted answers: every request is served normally again."""
        self.originate.clear()

    def take_originate(self) -> Fault | None:
        """Count an admitted originate request; the fault it consumes, if one is scripted."""
        self.originate_seen += 1
        return self.originate.popleft() if self.originate else None

    def public(self) -> Json:
        """GET /faults."""
        return {
            "originate": [fault.model_dump() for fault in self.originate],
            "originate_seen": self.originate_seen,
        }
