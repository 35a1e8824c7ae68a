"""Webhook signatures: HMAC-SHA256 over the timestamp and the body, as receivers check them.

The header reads `t=<unix seconds>,v1=<hex digest>`, the digest taken over
`"<t>." + body`. Binding the time into the digest lets a receiver refuse replays older than
its tolerance; `v1` leaves room for another scheme during a migration.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Calltrack-Signature"
TOLERANCE_SECONDS = 300


def new_secret() -> str:
    """A subscription's signing secret: 32 random bytes, prefixed so that leaks are findable."""
    return "whsec_" + secrets.token_urlsafe(32)


def digest(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `"<timestamp>." + body` under `secret`."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def header(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for this body sent at `timestamp`."""
    return f"t={timestamp},v1={digest(secret, timestamp, body)}"


def verify(
    secret: str, value: str, body: bytes, *, now: int, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """Whether a signature header is valid for `body` and recent; as a receiver checks it."""
    parts = dict(item.partition("=")[::2] for item in value.split(",") if "=" in item)
    stamp = parts.get("t", "")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        return False
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance:
        return False
    expected = digest(secret, timestamp, body)
    # As bytes: compare_digest refuses str with non-ASCII characters, and a header is the
    # sender's to fill.
    return any(
        hmac.compare_digest(expected.encode(), candidate.encode())
        for key, candidate in (item.partition("=")[::2] for item in value.split(","))
        if key == "v1"
    )
