"""The RFC 9457 problem document, for the OpenAPI contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FieldError(BaseModel):
    """One invalid field."""

    field: str
    message: str


class Problem(BaseModel):
    """An error, as application/problem+json."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["urn:calltrack:problem:invalid-input"])
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = Field(default=None, description="The offending field, when one is.")
    errors: list[FieldError] | None = None


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these status codes."""
    described = {
        401: "Missing or wrong credentials",
        404: "Not found",
        409: "Conflicts with what is stored",
        422: "Invalid input; `field` names the offending field",
        429: "Too many requests; see Retry-After",
        503: "Not available",
    }
    return {
        code: {
            "model": Problem,
            "description": described.get(code, "Error"),
            "content": {"application/problem+json": {}},
        }
        for code in codes
    }
