"""Control endpoints, no bearer: they stand for people picking up phones, and for test rigs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.emulator.calls import CallManager, behaviour_key
from app.emulator.models import FaultsRequest, InboundRequest, Script
from app.emulator.rest import emulator_base, error, service_base

M = TypeVar("M", bound=BaseModel)
# Real seconds a `"wait": true` request may hold its connection.
MAX_WAIT = 120.0


def _problem(detail: list[dict[str, str]]) -> JSONResponse:
    """422 with a `detail` entry (field, message, type) per fault found."""
    return JSONResponse({"status": 422, "message": "invalid request", "detail": detail}, 422)


def _invalid(exc: ValidationError) -> JSONResponse:
    """422 naming each offending field, e.g. 'script.outcome'."""
    return _problem(
        [
            {
                "field": ".".join(str(part) for part in item["loc"]) or "body",
                "message": item["msg"],
                "type": item["type"],
            }
            for item in exc.errors(include_url=False)
        ]
    )


async def _parse(request: Request, model: type[M]) -> M | JSONResponse:
    """The body validated as `model`, or the 422 answer."""
    try:
        body: Any = await request.json()
    except ValueError:
        return _problem([{"field": "body", "message": "not valid JSON", "type": "json_invalid"}])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        return _invalid(exc)


class ControlApi:
    """Start inbound calls, read calls' outcomes, script how numbers and the REST API behave."""

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
            Route("/calls", self.list_calls, methods=["GET"]),
            Route("/faults", self.get_faults, methods=["GET"]),
            Route("/faults", self.put_faults, methods=["PUT"]),
            Route("/faults", self.delete_faults, methods=["DELETE"]),
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

    async def list_calls(self, request: Request) -> Response:
        """GET /calls?to=: outcomes of the known calls to that number (all without it), oldest
        first; numbers match on their digits, as behaviours do."""
        to = request.query_params.get("to")
        if to is not None and not to.strip():
            return _problem([{"field": "to", "message": "must not be empty", "type": "missing"}])
        return JSONResponse([call.outcome() for call in self.calls.called(to)])

    async def get_faults(self, request: Request) -> Response:
        """GET /faults: the scripted answers not yet consumed, and originates seen."""
        return JSONResponse(self.calls.faults.public())

    async def put_faults(self, request: Request) -> Response:
        """PUT /faults: replace the scripted answers for the next originate requests."""
        parsed = await _parse(request, FaultsRequest)
        if isinstance(parsed, JSONResponse):
            return parsed
        self.calls.faults.replace(parsed.originate)
        return JSONResponse(self.calls.faults.public())

    async def delete_faults(self, request: Request) -> Response:
        """DELETE /faults: no more scripted answers; the count of originates seen stays."""
        self.calls.faults.clear()
        return Response(status_code=204)
