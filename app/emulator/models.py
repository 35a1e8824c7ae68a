"""What the emulator keeps about a call, and the control API's request bodies."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Real seconds a scripted answer may be held back.
MAX_FAULT_DELAY = 60.0

Json = dict[str, Any]
RingResult = Literal["answered", "busy", "no-answer", "failed"]


class Script(BaseModel):
    """How a dialled party behaves: ring for `answer_after` seconds, then the outcome."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["answer", "busy", "no-answer", "failed"] = "answer"
    # For busy/failed too: how long it rings before the refusal. No-answer rings out.
    answer_after: float = Field(default=2.0, ge=0, le=3600)
    talk: float = Field(default=30.0, ge=0, le=86400)
    # Who ends the conversation after `talk`: the dialled party, or the caller.
    hangup_by: Literal["callee", "caller"] = "callee"


DEFAULT_SCRIPT = Script()


class CallEnded(Exception):
    """The call is over; `hangup` says who or what ended it."""

    def __init__(self, hangup: str) -> None:
        super().__init__(hangup)
        self.hangup = hangup


def seconds(value: str | None, default: float) -> float:
    """A CXML attribute holding seconds; the default when absent or malformed."""
    try:
        parsed = float(value) if value is not None else default
    except ValueError:
        return default
    return parsed if parsed >= 0 else default


class InboundRequest(BaseModel):
    """A person dials one of the service's numbers."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)
    caller_name: str | None = Field(default=None, max_length=128)
    method: Literal["POST", "GET"] = "POST"
    script: Script | None = None
    wait: bool = False
    # The caller gives up after this many virtual seconds, whatever is playing.
    hangup_after: float | None = Field(default=None, gt=0, le=86400)
    source: str = Field(default="trunk", max_length=32)


class Fault(BaseModel):
    """One scripted answer to an originate request.

    With `place_call` the call starts at once, like any originate, and the answer follows
    after `delay` real seconds: the usual session for 2xx, else an error body. Without it no
    call starts; a 2xx then answers a session whose token the emulator never heard of.
    """

    model_config = ConfigDict(extra="forbid")

    # 1xx cannot be a final HTTP answer, so scripted statuses start at 200.
    status: int = Field(default=200, ge=200, le=599)
    # Sent as Retry-After (whole seconds, rounded up) with 429 and 503 only.
    retry_after: float | None = Field(default=None, ge=0, le=86400)
    delay: float = Field(default=0.0, ge=0, le=MAX_FAULT_DELAY)
    # None: the call is placed for a 2xx status, not for any other.
    place_call: bool | None = None

    @property
    def places_call(self) -> bool:
        """Whether the call really starts."""
        return self.place_call if self.place_call is not None else 200 <= self.status < 300

    def headers(self) -> dict[str, str]:
        """The answer's extra headers."""
        if self.retry_after is None or self.status not in (429, 503):
            return {}
        return {"Retry-After": str(math.ceil(self.retry_after))}


class FaultsRequest(BaseModel):
    """PUT /faults: the scripted answers for the next requests, per endpoint."""

    model_config = ConfigDict(extra="forbid")

    originate: list[Fault] = Field(default_factory=list, max_length=1000)


@dataclass
class DialRecord:
    """One <Dial> (or the first leg of an outbound call) and how it went."""

    number: str
    caller_id: str
    status: RingResult = "failed"
    record: bool = False
    action_status: int | None = None
    talk: float = 0.0

    def public(self) -> Json:
        """The outcome's `dial` object."""
        return {
            "number": self.number,
            "caller_id": self.caller_id,
            "status": self.status,
            "record": self.record,
            "action_status": self.action_status,
        }


@dataclass
class Call:
    """One emulated call, inbound or outbound-api; offsets are virtual seconds from start."""

    token: str
    direction: Literal["inbound", "outbound-api", "subscriber"]
    from_: str
    to: str
    domain: str
    started: datetime
    service_url: str
    emulator_url: str
    session_url: str
    caller_name: str = ""
    method: Literal["POST", "GET"] = "POST"
    source: str = "trunk"
    script: Script | None = None
    status: str = "new"
    offset: float = 0.0
    answer_offset: float | None = None
    end_offset: float | None = None
    state: Literal["active", "ended"] = "active"
    webhook_status: int | None = None
    cxml: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    whispered: list[str] = field(default_factory=list)
    dials: list[DialRecord] = field(default_factory=list)
    hangup: str | None = None
    hangup_reason: str | None = None
    reject_reason: str | None = None
    # The last ringing outcome (a <Dial>, or an outbound call's first leg).
    ring_status: RingResult | None = None
    # The caller gave up at this virtual offset: that is when the call ended.
    fixed_end: float | None = None
    disposition: str | None = None
    recording_url: str | None = None
    session_updates_sent: int = 0
    events_made: int = 0
    cdr_sent: bool = False
    errors: list[str] = field(default_factory=list)
    # Set once the end time is fixed (before the final reports), and once all is sent.
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    player: asyncio.Task[None] | None = None
    # A subscriber (Web-To-Call) call: its INVITE's X- headers, what answering its leg
    # does (the SIP 200 with the media answer), and the media counts once it ends.
    sip_headers: dict[str, str] = field(default_factory=dict)
    on_answer: Callable[[], Awaitable[None]] | None = None
    media: dict[str, int] | None = None

    @property
    def call_id(self) -> str:
        """The SIP Call-ID of the caller's leg."""
        return f"{self.token}@{self.source}.emulator"

    @property
    def answered(self) -> bool:
        """Whether the caller's leg was answered."""
        return self.answer_offset is not None

    def epoch_ms(self, offset: float | None) -> int | None:
        """A virtual offset as epoch milliseconds."""
        if offset is None:
            return None
        return int((self.started + timedelta(seconds=offset)).timestamp() * 1000)

    def duration(self) -> int:
        """Seconds from start to end (to now while active)."""
        end = self.end_offset if self.end_offset is not None else self.offset
        return round(end)

    def billsec(self) -> int:
        """Seconds from answer to end."""
        if self.answer_offset is None:
            return 0
        end = self.end_offset if self.end_offset is not None else self.offset
        return max(0, round(end - self.answer_offset))

    def session(self) -> Json:
        """Cloudonix's session object."""
        return {
            "token": self.token,
            "domain": self.domain,
            "callerId": self.from_,
            "destination": self.to,
            "direction": self.direction,
            "status": self.status,
            "callStartTime": self.epoch_ms(0.0),
            "callAnswerTime": self.epoch_ms(self.answer_offset),
            "callEndTime": self.epoch_ms(self.end_offset),
            "profile": {},
        }

    def outcome(self) -> Json:
        """The control API's view of the call."""
        return {
            "token": self.token,
            "direction": self.direction,
            "state": self.state,
            "from": self.from_,
            "to": self.to,
            "webhook_status": self.webhook_status,
            "cxml": list(self.cxml),
            "said": list(self.said),
            "whispered": list(self.whispered),
            "dial": self.dials[-1].public() if self.dials else None,
            "dials": [dial.public() for dial in self.dials],
            "hangup": self.hangup,
            "disposition": self.disposition,
            "duration": self.duration(),
            "billsec": self.billsec(),
            "recording_url": self.recording_url,
            "session_updates_sent": self.session_updates_sent,
            "cdr_sent": self.cdr_sent,
            "errors": list(self.errors),
            "media": dict(self.media) if self.media is not None else None,
            "sip_headers": dict(self.sip_headers),
        }
