"""The dashboard's login: the admin token once, then a signed cookie for eight hours.

The cookie is `<expiry epoch>.<HMAC-SHA256 of "dashboard|<expiry>" keyed by the admin
token>`: nothing is stored, and changing the admin token signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

COOKIE = "calltrack_dash"
LIFETIME_SECONDS = 8 * 3600


def _signature(token: str, expiry: int) -> str:
    return hmac.new(token.encode(), f"dashboard|{expiry}".encode(), hashlib.sha256).hexdigest()


def token_matches(presented: str, token: str) -> bool:
    """Whether the presented admin token is the configured one, in constant time."""
    return hmac.compare_digest(presented.encode(), token.encode())


def issue(token: str, now: datetime) -> str:
    """A cookie value good for LIFETIME_SECONDS from now."""
    expiry = int(now.timestamp()) + LIFETIME_SECONDS
    return f"{expiry}.{_signature(token, expiry)}"


def valid(value: str | None, token: str, now: datetime) -> bool:
    """Whether a cookie value was issued with this token and has not expired."""
    if not value:
        return False
    expiry, _, signature = value.partition(".")
    if not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12:
        return False
    if int(expiry) <= now.timestamp():
        return False
    return hmac.compare_digest(signature.encode(), _signature(token, int(expiry)).encode())
