"""Ops API payloads for website backends' site keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class SiteKeyCreate(BaseModel):
    """A key for one website backend."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class SiteKeyOut(BaseModel):
    """A key as stored (never the secret)."""

    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class SiteKeyCreated(SiteKeyOut):
    """A new key; the secret is shown this once."""

    key: str = Field(description="Send as 'Authorization: Bearer <key>'; shown only now.")
