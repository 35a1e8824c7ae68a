"""Control endpoints, no bearer: they stand for people picking up phones."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.emulator.calls import CallManager, behaviour_key
from app.emulator.models import InboundRequest, Script
from app.emulator.rest import emulator_base, error, service_base

M = TypeVar("M", bound=BaseModel)
# Real seconds a `"wait": true` request may hold its connection.
MAX_WAIT = 120.0


def _invalid(exc: ValidationError) -> JSONResponse:
    """422 naming each offending field, e.g. 'script.outcome'."""
    detail = [
        {
            "field": ".".join(str(part) for part in item["loc"]) or "body",
            "message": item["msg"],
            "type": item["type"],
        }
        for item in exc.errors(include_url=False)
    ]
    return JSONResponse({"status": 422, "message": "invalid request", "detail": detail}, 422)


async def _parse(request: Request, model: type[M]) -> M | JSONResponse:
    """The body validated as `model`, or the 422 answer."""
    try:
        body: Any = await request.json()
    except ValueError:
        detail = [{"field": "body", "message": "not valid JSON", "type": "json_invalid"}]
        return JSONResponse({"status": 422, "message": "invalid request", "detail": detail}, 422)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)


class ControlApi:
    """Start inbound calls, read any call's outcome, script how numbers behave."""

    def __init__(self, calls: CallManager) -> None:
        self.calls = calls

    def routes(self) -> list[BaseRoute]:
        """The routes, relative to the emulator's prefix."""
        return [
            Route("/inbound", self.inbound, methods=["POST"]),
            Route("/inbound/{token}", self.outcome, methods=["GET"]),
            Route("/behaviours", self.list_behaviours, methods=["GET"]),
            Route("/behaviours/{number}", self.put_behaviour, methods=["PUT"]),
            Route("/behaviours/{number}", self.delete_behaviour, methods=["DELETE"]),
        ]

    async def inbound(self, request: Request) -> Response:
        """POST /inbound: a call arrives from a carrier; 202 now, or 200 when it has ended."""
        parsed = await _parse(request, InboundRequest)
        if isinstance(parsed, JSONResponse):
            return parsed
        call = self.calls.start_inbound(parsed, service_base(request), emulator_base(request))
        if parsed.wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.ended.wait(), MAX_WAIT)
            if call.state == "ended":
                return JSONResponse(call.outcome())
            return JSONResponse(call.outcome(), 202)
        return JSONResponse({"token": call.token, "state": call.state}, 202)

    async def outcome(self, request: Request) -> Response:
        """GET /inbound/{token}: everything the call did so far (inbound or outbound)."""
        call = self.calls.calls.get(request.path_params["token"])
        if call is None:
            return error(404, "call not found")
        return JSONResponse(call.outcome())

    async def list_behaviours(self, request: Request) -> Response:
        """GET /behaviours: the registered scripts by number key."""
        return JSONResponse(
            {key: script.model_dump() for key, script in self.calls.behaviours.items()}
        )

    async def put_behaviour(self, request: Request) -> Response:
        """PUT /behaviours/{number}: how that number behaves whenever it is dialled."""
        parsed = await _parse(request, Script)
        if isinstance(parsed, JSONResponse):
            return parsed
        number = request.path_params["number"]
        self.calls.behaviours[behaviour_key(number)] = parsed
        return JSONResponse({"number": number, **parsed.model_dump()})

    async def delete_behaviour(self, request: Request) -> Response:
        """DELETE /behaviours/{number}: back to the default; 204 even if none was set."""
        self.calls.behaviours.pop(behaviour_key(request.path_params["number"]), None)
        return Response(status_code=204)
