"""The emulator as one ASGI app: mount it in the service or serve it on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.types import Receive, Scope, Send

from app.emulator.calls import CallManager
from app.emulator.config import EmulatorConfig
from app.emulator.control import ControlApi
from app.emulator.pacing import SlidingWindow
from app.emulator.rest import RestApi
from app.emulator.sip_gateway import SipGateway
from app.emulator.subscribers import SubscriberApi, Subscribers


class Emulator:
    """A Cloudonix stand-in: REST API, control endpoints, and the calls it plays."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        prefix: str = "/emulator",
        sip: Callable[[Emulator], SipGateway] | None = None,
    ) -> None:
        self.config = config
        self.calls = CallManager(config)
        self.limiter = SlidingWindow(config.rate_requests, config.rate_period)
        self.subscribers = Subscribers()
        routes: list[BaseRoute] = [
            *RestApi(self.calls, self.limiter).routes(),
            *SubscriberApi(config, self.subscribers).routes(),
            *ControlApi(self.calls).routes(),
        ]
        # Built from the emulator (its subscribers are the directory), mounted at /sip.
        self.sip = sip(self) if sip is not None else None
        if self.sip is not None:
            routes.append(WebSocketRoute("/sip", self.sip))
        prefix = prefix.rstrip("/")
        # A plain Starlette app: nothing here belongs in the service's OpenAPI schema.
        self.app = Starlette(
            routes=[Mount(prefix, routes=routes)] if prefix else routes,
            lifespan=self._lifespan,
        )

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Runs only when served on its own: a mounted sub-app gets no lifespan.
        yield
        await self.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection."""
        await self.app(scope, receive, send)

    async def aclose(self) -> None:
        """Cancel running calls and close the HTTP client."""
        if self.sip is not None:
            await self.sip.aclose()
        await self.calls.aclose()


def create_emulator(
    config: EmulatorConfig,
    *,
    prefix: str = "/emulator",
    sip: Callable[[Emulator], SipGateway] | None = None,
) -> Emulator:
    """Build the emulator; mount with prefix='' or serve standalone with the default."""
    return Emulator(config, prefix=prefix, sip=sip)
