"""The voice platform as the service sees it: a Protocol, neutral data, two error families.

ProviderError
├── ProviderRetryable       the platform may accept the same request later (429, 5xx, timeouts)
├── ProviderRejected        the platform refused the request as given (4xx); retrying is useless
│   └── CallNotFound        the call does not exist (or no longer does)
└── ProviderOutcomeUnknown  a request that is not safe to repeat (placing a call) may or may not
                            have taken effect: a timeout or gateway error after it was sent
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class ProviderError(Exception):
    """A request to the voice platform failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ProviderRetryable(ProviderError):
    """A failure worth retrying later; `retry_after` is the platform's hint in seconds."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ProviderRejected(ProviderError):
    """The platform refused the request; the same request will be refused again."""


class CallNotFound(ProviderRejected):
    """The call is unknown to the platform."""


class ProviderOutcomeUnknown(ProviderError):
    """A non-idempotent request may have taken effect; repeating it could act twice."""


class CallState(StrEnum):
    """A call's state, whatever the platform calls it."""

    QUEUED = "queued"
    RINGING = "ringing"
    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """Whether the call has ended."""
        return self not in {CallState.QUEUED, CallState.RINGING, CallState.ANSWERED}


@dataclass(frozen=True)
class Originate:
    """A call to place: ring `destination` first, then run the application when it answers."""

    destination: str
    caller_id: str
    cxml: str | None = None
    url: str | None = None
    status_callback: str | None = None
    timeout_seconds: int = 30


@dataclass(frozen=True)
class CallInfo:
    """What the platform knows of a call."""

    call_id: str
    state: CallState
    direction: str
    caller_id: str | None = None
    destination: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Subscriber:
    """A SIP identity on the platform's domain: what a browser registers as for Web-To-Call."""

    msisdn: str
    sip_password: str = field(repr=False)
    profile: dict[str, str] = field(default_factory=dict)


class VoiceProvider(Protocol):
    """Call control on a voice platform."""

    name: str

    async def originate(self, request: Originate) -> CallInfo:
        """Place a call; the answer carries the platform's call id."""
        ...

    async def get_call(self, call_id: str) -> CallInfo:
        """The call's current state; CallNotFound when unknown."""
        ...

    async def hangup(self, call_id: str, *, reason: str | None = None) -> None:
        """End the call; ending a call that already ended is not an error."""
        ...

    async def create_subscriber(self, subscriber: Subscriber) -> None:
        """Create a SIP subscriber that can register and call."""
        ...

    async def delete_subscriber(self, msisdn: str) -> None:
        """Delete a subscriber; one already gone is not an error."""
        ...

    async def aclose(self) -> None:
        """Release what the provider holds (not the shared HTTP client)."""
        ...
