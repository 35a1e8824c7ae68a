"""What Cloudonix sends to our webhooks, as far as the service reads it.

Field names are Cloudonix's own. Unknown fields are ignored: the platform adds fields over
time, and a webhook that refused them would leave callers in silence.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_CONFIG = ConfigDict(extra="ignore", populate_by_name=True, coerce_numbers_to_str=True)
# Epoch milliseconds up to 2100-01-01: later values are nonsense, not times.
MAX_MS = 4_102_444_800_000
CALL_ID = r"^[A-Za-z0-9._:@-]+$"  # what a session token may hold


class VoiceRequest(BaseModel):
    """The voice-application request: a call arrived, what should happen to it?"""

    model_config = _CONFIG

    call_sid: str | None = Field(default=None, alias="CallSid", max_length=64, pattern=CALL_ID)
    session: str | None = Field(default=None, alias="Session", max_length=64, pattern=CALL_ID)
    from_: str | None = Field(default=None, alias="From", max_length=64)
    to: str = Field(alias="To", min_length=1, max_length=64)
    caller_name: str | None = Field(default=None, alias="CallerName", max_length=200)
    direction: str = Field(default="inbound", alias="Direction", max_length=16)
    call_status: str | None = Field(default=None, alias="CallStatus", max_length=32)
    domain: str | None = Field(default=None, alias="Domain", max_length=255)
    account_sid: str | None = Field(default=None, alias="AccountSid", max_length=255)
    session_data: dict[str, Any] | None = Field(default=None, alias="SessionData")
    dial_call_status: str | None = Field(default=None, alias="DialCallStatus", max_length=16)
    dial_call_duration: int | None = Field(
        default=None, alias="DialCallDuration", ge=0, le=7 * 86400
    )

    @field_validator("session_data", mode="before")
    @classmethod
    def _json_text(cls, value: object) -> object:
        # Query strings and forms can only carry it as JSON text.
        if isinstance(value, str):
            try:
                return json.loads(value) if value.strip() else None
            except ValueError as exc:
                raise ValueError("SessionData is not valid JSON") from exc
        return value

    @property
    def call_id(self) -> str:
        """The platform's id of the call (its session token)."""
        return self.call_sid or self.session or ""

    @property
    def claimed_visit(self) -> str | None:
        """The visit a browser call says it is from: its X-Calltrack-Session header, if
        the platform passed it on, else what it dialled (`web-<session id>`)."""
        profile = (self.session_data or {}).get("profile")
        headers = profile.get("subscriber-sip-headers") if isinstance(profile, dict) else None
        if isinstance(headers, dict):
            for name, value in headers.items():
                if str(name).lower() == "x-calltrack-session" and isinstance(value, str):
                    return value[:64]
        user = self.to.removeprefix("sip:").split("@", 1)[0]
        return user.removeprefix("web-")[:64] if user.startswith("web-") else None


class SessionUpdate(BaseModel):
    """One session-update notification."""

    model_config = _CONFIG

    id: str | None = Field(default=None, max_length=64)
    event_id: str | None = Field(default=None, alias="eventId", max_length=64)
    token: str = Field(min_length=1, max_length=64, pattern=CALL_ID)
    domain: str | None = Field(default=None, max_length=255)
    caller_id: str | None = Field(default=None, alias="callerId", max_length=64)
    destination: str | None = Field(default=None, max_length=64)
    direction: str = Field(default="inbound", max_length=16)
    status: str = Field(min_length=1, max_length=32)
    reason: str | None = Field(default=None, max_length=255)
    call_start_time: int | None = Field(default=None, alias="callStartTime", ge=0, le=MAX_MS)
    call_answer_time: int | None = Field(default=None, alias="callAnswerTime", ge=0, le=MAX_MS)
    call_end_time: int | None = Field(default=None, alias="callEndTime", ge=0, le=MAX_MS)


class CdrSession(BaseModel):
    """The session part of a CDR."""

    model_config = _CONFIG

    token: str = Field(min_length=1, max_length=64, pattern=CALL_ID)
    call_start_time: int | None = Field(default=None, alias="callStartTime", ge=0, le=MAX_MS)
    call_answer_time: int | None = Field(default=None, alias="callAnswerTime", ge=0, le=MAX_MS)
    call_end_time: int | None = Field(default=None, alias="callEndTime", ge=0, le=MAX_MS)
    direction: str | None = Field(default=None, max_length=16)


class Cdr(BaseModel):
    """The call detail record sent when a call ends."""

    model_config = _CONFIG

    session: CdrSession
    from_: str | None = Field(default=None, alias="from", max_length=64)
    to: str | None = Field(default=None, max_length=64)
    disposition: str = Field(min_length=1, max_length=16)
    duration: int = Field(ge=0, le=7 * 86400)
    billsec: int = Field(ge=0, le=7 * 86400)
    domain: str | None = Field(default=None, max_length=255)
    recording_url: str | None = Field(default=None, max_length=2048)
