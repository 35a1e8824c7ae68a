"""Cloudonix's call-control REST API: originate, read a session, hang up.

Checked in this order: bearer (401), domain (404), pacing (429 + Retry-After). DELETE of a
call that already ended answers 204, like hanging up twice on a real phone; unknown is 404.
An originate past the domain check consumes the next scripted fault (PUT /faults), if any,
instead of being paced; a fault that places the call still needs a valid body (else 400).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import wave
from typing import Any
from uuid import uuid4

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.emulator.calls import CallManager
from app.emulator.models import Call, Fault, Json
from app.emulator.pacing import SlidingWindow


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error body the way the emulator spells them."""
    return JSONResponse({"status": status, "message": message}, status, headers=headers)


def service_base(request: Request) -> str:
    """scheme://host of the request: the service's address when the emulator is mounted in it."""
    root = request.scope.get("app_root_path", "")
    return f"{request.url.scheme}://{request.url.netloc}{root}"


def emulator_base(request: Request) -> str:
    """The emulator's own base URL, mount path included."""
    return f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"


class RestApi:
    """The REST routes: bearer `api_key`, one domain, paced per domain."""

    def __init__(self, calls: CallManager, limiter: SlidingWindow) -> None:
        self.calls = calls
        self.config = calls.config
        self.limiter = limiter

    def routes(self) -> list[BaseRoute]:
        """The routes, relative to the emulator's prefix."""
        return [
            Route("/calls/{domain}/application", self.originate, methods=["POST"]),
            Route("/calls/{domain}/sessions/{token}", self.get_session, methods=["GET"]),
            Route("/calls/{domain}/sessions/{token}", self.delete_session, methods=["DELETE"]),
            Route("/recordings/{token}.wav", self.recording, methods=["GET"]),
        ]

    def _admit(self, request: Request) -> JSONResponse | None:
        """401 or 404 when the bearer or the domain is wrong; None when both are right."""
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.config.api_key}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return error(401, "invalid or missing API key", {"WWW-Authenticate": "Bearer"})
        domain = request.path_params["domain"]
        if domain != self.config.domain:
            return error(404, f"domain {domain!r} not found")
        return None

    def _pace(self, request: Request) -> JSONResponse | None:
        """429 when the domain's window is full; None when the request is admitted."""
        wait = self.limiter.acquire(request.path_params["domain"])
        if wait is not None:
            return error(429, "too many requests", {"Retry-After": str(wait)})
        return None

    def _gate(self, request: Request) -> JSONResponse | None:
        """401, 404 or 429 when the request may not proceed; None when it may."""
        refused = self._admit(request)
        return refused if refused is not None else self._pace(request)

    def _call(self, request: Request) -> Call | None:
        call = self.calls.calls.get(request.path_params["token"])
        return call if call is not None and call.domain == request.path_params["domain"] else None

    async def originate(self, request: Request) -> Response:
        """POST /calls/{domain}/application: place a call, answer its token."""
        refused = self._admit(request)
        if refused is not None:
            return refused
        fault = self.calls.faults.take_originate()
        if fault is None:
            refused = self._pace(request)
            if refused is not None:
                return refused
        elif not fault.places_call:
            await asyncio.sleep(fault.delay)
            return _scripted(fault, _phantom(self.config.domain))
        placed = await self._place(request)
        if not isinstance(placed, Call):
            return placed
        if fault is None:
            return JSONResponse(_created(placed))
        # The call rings already; the client hears of it late, or as an error.
        await asyncio.sleep(fault.delay)
        return _scripted(fault, _created(placed))

    async def _place(self, request: Request) -> Call | JSONResponse:
        """Start the call the body describes, or the 400 answer."""
        try:
            body: Any = await request.json()
        except ValueError:
            return error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object")
        destination = body.get("destination")
        if not isinstance(destination, str) or not destination.strip():
            return error(400, "destination is mandatory")
        caller_id = body.get("caller-id", body.get("callerId"))
        cxml, url, application = (body.get(key) for key in ("cxml", "url", "application"))
        callback, timeout = body.get("callback"), body.get("timeout", 30)
        if not any(isinstance(value, str) and value for value in (cxml, url, application)):
            return error(400, "one of cxml, url or application is mandatory")
        if not all(isinstance(v, str) or v is None for v in (caller_id, cxml, url, callback)):
            return error(400, "caller-id, cxml, url and callback must be strings")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            return error(400, "timeout must be a positive number of seconds")
        call = self.calls.start_outbound(
            destination.strip(),
            caller_id or "anonymous",
            cxml=cxml or None,
            # A named application is the service's own voice URL here: the only one known.
            url=url or None,
            callback=callback or None,
            timeout=float(timeout),
            service_url=service_base(request),
            emulator_url=emulator_base(request),
        )
        return call

    async def get_session(self, request: Request) -> Response:
        """GET /calls/{domain}/sessions/{token}: the session as Cloudonix shows it."""
        refused = self._gate(request)
        if refused is not None:
            return refused
        call = self._call(request)
        if call is None:
            return error(404, "session not found")
        return JSONResponse(call.session())

    async def delete_session(self, request: Request) -> Response:
        """DELETE /calls/{domain}/sessions/{token}: hang up; an ended call answers 204 too."""
        refused = self._gate(request)
        if refused is not None:
            return refused
        call = self._call(request)
        if call is None:
            return error(404, "session not found")
        await self.calls.hangup(call, "api", request.query_params.get("reason"))
        return Response(status_code=204)

    async def recording(self, request: Request) -> Response:
        """GET /recordings/{token}.wav: one second of silence for a recorded call."""
        call = self.calls.calls.get(request.path_params["token"])
        if call is None or call.recording_url is None:
            return error(404, "recording not found")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(b"\x00\x00" * 8000)
        return Response(buffer.getvalue(), media_type="audio/wav")


def _created(call: Call) -> Json:
    """Originate's answer for a placed call."""
    return {"domainId": 1, "subscriberId": 1, **call.session()}


def _phantom(domain: str) -> Json:
    """A 2xx answer for a call that was never placed: its token is unknown (GET is 404)."""
    return {"domainId": 1, "subscriberId": 1, "token": uuid4().hex, "domain": domain}


def _scripted(fault: Fault, created: Json) -> Response:
    """The answer a fault scripts: `created` for 2xx, else the emulator's error body."""
    headers = fault.headers()
    if fault.status in (204, 205, 304):
        return Response(status_code=fault.status, headers=headers)  # no body allowed
    if 200 <= fault.status < 300:
        return JSONResponse(created, fault.status, headers=headers)
    return error(fault.status, "scripted fault", headers)
