"""The HTTP request a delivery makes: a signed webhook POST, or a GA4 Measurement Protocol hit."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app import __version__
from app.services import signing

GA4_TARGET = "ga4"
GA4_EVENT = "phone_call"
# The Measurement Protocol takes events up to 72 hours back; older ones are dropped.
GA4_MAX_AGE = timedelta(hours=72)
USER_AGENT = f"calltrack-webhooks/{__version__}"


@dataclass(frozen=True)
class Outgoing:
    """What to send; `secret_params` are query parameters never to be logged."""

    url: str
    body: bytes
    headers: dict[str, str]
    secret_params: dict[str, str] = field(default_factory=dict)


class Undeliverable(Exception):
    """The delivery can never succeed (GA4 no longer configured, event too old for GA4)."""


def webhook(
    *, url: str, secret: str, payload: str, event_id: str, kind: str, attempt: int, now: datetime
) -> Outgoing:
    """A webhook POST signed for this moment; the body is the frozen payload."""
    body = payload.encode()
    return Outgoing(
        url=url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Calltrack-Event": kind,
            "Calltrack-Event-Id": event_id,
            "Calltrack-Attempt": str(attempt),
            signing.SIGNATURE_HEADER: signing.header(secret, int(now.timestamp()), body),
        },
    )


def _param(value: object) -> str:
    # GA4 caps parameter values at 100 characters.
    return str(value)[:100] if value is not None else "(none)"


def ga4_body(payload: str) -> dict[str, Any]:
    """The Measurement Protocol body for a call.completed payload."""
    data = json.loads(payload)["data"]
    context = data.get("context") or {}
    client_id = context.get("ga_client_id")
    if not client_id:
        raise Undeliverable("the call's visit has no GA client id")
    started = datetime.fromisoformat(data["started_at"].replace("Z", "+00:00"))
    return {
        "client_id": client_id,
        "timestamp_micros": int(started.timestamp() * 1_000_000),
        "events": [
            {
                "name": GA4_EVENT,
                "params": {
                    "source": _param(data.get("source")),
                    "medium": _param(data.get("medium")),
                    "campaign": _param(data.get("campaign")),
                    "duration": int(data.get("talk_seconds") or 0),
                    "first_time": 1 if data.get("first_time") else 0,
                    "call_status": _param(data.get("status")),
                    "attribution": _param(data.get("attribution")),
                    # Without it GA4 may not count the event towards engaged sessions.
                    "engagement_time_msec": 1,
                },
            }
        ],
    }


def ga4(
    *,
    endpoint: str,
    measurement_id: str,
    api_secret: str,
    payload: str,
    now: datetime,
) -> Outgoing:
    """A Measurement Protocol POST for a call.completed payload."""
    body = ga4_body(payload)
    if now - datetime.fromtimestamp(body["timestamp_micros"] / 1_000_000, UTC) > GA4_MAX_AGE:
        raise Undeliverable("the call is older than GA4 accepts (72 hours)")
    return Outgoing(
        url=endpoint,
        body=json.dumps(body, separators=(",", ":")).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        secret_params={"measurement_id": measurement_id, "api_secret": api_secret},
    )
