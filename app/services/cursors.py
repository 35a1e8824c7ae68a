"""Opaque page cursors: the (time, id) of the last row of a page, newest-first listings."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from app.errors import InvalidInput

K = TypeVar("K")


def encode(at: datetime, key: object) -> str:
    """A cursor after the row at (`at`, `key`)."""
    raw = f"{at.astimezone(UTC).isoformat()}|{key}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, key: Callable[[str], K]) -> tuple[datetime, K]:
    """The (time, key) a cursor points after; `key` parses the id and raises ValueError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, rest = raw.partition("|")
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise ValueError("naive")
        return when.astimezone(UTC), key(rest)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor: not a cursor this API gave out", field="query.cursor") from exc
