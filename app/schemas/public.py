"""Payloads of the public endpoints (the tutorial's fields, plus optional extensions)."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{16,64}$"
POOL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"

Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048)]


class VisitContext(BaseModel):
    """Marketing context of the visit, captured on the landing page."""

    model_config = ConfigDict(extra="ignore")

    landing_url: Url | None = None
    referrer: Url | None = None
    utm_source: Short | None = None
    utm_medium: Short | None = None
    utm_campaign: Short | None = None
    utm_term: Short | None = None
    utm_content: Short | None = None
    gclid: Short | None = None
    gbraid: Short | None = None
    wbraid: Short | None = None
    msclkid: Short | None = None
    fbclid: Short | None = None
    ga_client_id: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = (
        None
    )
    user_agent: Annotated[str, StringConstraints(max_length=512)] | None = None
    ip: Annotated[str, StringConstraints(strip_whitespace=True, max_length=45)] | None = Field(
        default=None,
        description="The visitor's IP; honoured only from a website backend with a site key.",
    )

    @field_validator("ip")
    @classmethod
    def _valid_ip(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError as exc:
            raise ValueError("not an IP address") from exc


Phone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]


class ProspectForm(BaseModel):
    """The tutorial's prospect form (email, name; phone as each endpoint needs it) and our
    extensions: the visit's session, the pool, the marketing context."""

    model_config = ConfigDict(extra="ignore")

    email: EmailStr | None = None
    fullname: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None
    session_id: Annotated[str, StringConstraints(pattern=SESSION_ID_PATTERN)] | None = None
    pool: Annotated[str, StringConstraints(pattern=POOL_NAME_PATTERN)] = "default"
    context: VisitContext = Field(default_factory=VisitContext)


class TrackingNumberRequest(ProspectForm):
    """A prospect form or a page asking for a tracking number; every field is optional."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "email": "myuser@mydomain.com",
                    "phone": "12127778900",
                    "fullname": "some name",
                    "pool": "default",
                    "context": {"landing_url": "https://example.com/?utm_source=google"},
                }
            ]
        },
    )

    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] | None = None


class TrackingNumberResponse(BaseModel):
    """The number to show; `tracked` is false when the pool's fallback number is served."""

    status: Literal["success"] = "success"
    message: str
    phonenumber: str = Field(description="E.164 digits without '+', as in the tutorial.")
    session_id: str | None = Field(description="Send it back on later requests of the visit.")
    expires_at: datetime | None = Field(description="When the lease ends unless renewed.")
    expires_in: int | None = Field(
        default=None,
        description="Seconds until `expires_at`, by the service's clock: a browser whose clock "
        "is off renews on time by this.",
    )
    tracked: bool
    fallback_reason: str | None = Field(
        default=None, description="Why the fallback was served: pool_exhausted, pool_empty, bot."
    )
