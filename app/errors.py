"""One error tree, rendered as RFC 9457 problem details.

AppError
├── InvalidInput          422  a field's value is wrong (names the field)
├── Unauthorized          401  missing or wrong credentials
├── Forbidden             403  authenticated, but not for this (e.g. another voice domain)
├── AdminDisabled         503  CALLTRACK_ADMIN_TOKEN is not configured
├── WebhooksDisabled      503  CALLTRACK_WEBHOOK_TOKEN is not configured
├── NotFound              404
├── Conflict              409  e.g. a number already in a pool
└── RateLimited           429  carries Retry-After
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
_log = logging.getLogger("calltrack.errors")


class AppError(Exception):
    """Base of every error the service reports to a client."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.headers = headers or {}
        self.extra = extra


class InvalidInput(AppError):
    """A request field holds a value we cannot accept."""

    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class Unauthorized(AppError):
    """Credentials are missing or wrong."""

    status = 401
    slug = "unauthorized"
    title = "Unauthorized"


class Forbidden(AppError):
    """The caller is known but may not do this."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class WebhooksDisabled(AppError):
    """No webhook token is configured, so the voice webhooks refuse everything."""

    status = 503
    slug = "webhooks-disabled"
    title = "Webhooks disabled"


class AdminDisabled(AppError):
    """The ops API has no token configured, so it refuses everything."""

    status = 503
    slug = "admin-disabled"
    title = "Ops API disabled"


class NotFound(AppError):
    """The addressed resource does not exist."""

    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(AppError):
    """The request conflicts with what is stored."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class Unavailable(AppError):
    """Something the request needs (a platform, a setting) is not available now."""

    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class RateLimited(AppError):
    """Too many requests from one client."""

    status = 429
    slug = "rate-limited"
    title = "Too many requests"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """Build an application/problem+json response."""
    body: dict[str, Any] = {
        "type": f"urn:calltrack:problem:{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic error location as a problem's `field`."""
    # ("body", "rows", 3, "cost") -> "rows[3].cost": list positions as the services write them.
    parts = list(loc)
    if parts and parts[0] == "body":
        parts = parts[1:]
    field = ""
    for part in parts:
        if isinstance(part, int):
            field += f"[{part}]"
        else:
            field += f".{part}" if field else str(part)
    return field or "body"


def invalid_input(exc: ValidationError, *, prefix: str = "") -> InvalidInput:
    """A pydantic validation error as an InvalidInput naming the first bad field."""
    errors = [
        {"field": prefix + field_of(tuple(err.get("loc", ()))), "message": err["msg"]}
        for err in exc.errors()
    ]
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return InvalidInput(
        f"{first['field']}: {first['message']}", field=first["field"], errors=errors
    )


def _validation_problem(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            errors.append({"field": "body", "message": "request body is not valid JSON"})
            continue
        errors.append({"field": field_of(loc), "message": str(err.get("msg", "invalid"))})
    first = errors[0] if errors else {"field": "body", "message": "invalid request"}
    return problem(
        422,
        InvalidInput.slug,
        InvalidInput.title,
        f"{first['field']}: {first['message']}",
        instance=request.url.path,
        field=first["field"],
        errors=errors,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Make every error leave the service as problem+json."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem(
            exc.status,
            exc.slug,
            exc.title,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            field=exc.field,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_problem(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed"}.get(exc.status_code, "HTTP error")
        return problem(
            exc.status_code,
            "http",
            title,
            str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        _log.exception("unhandled error", extra={"route": request.url.path})
        return problem(500, "internal", "Internal error", "an unexpected error occurred")
