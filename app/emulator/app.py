"""The emulator as one ASGI app: mount it in the service or serve it on its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import Receive, Scope, Send

from app.emulator.calls import CallManager
from app.emulator.config import EmulatorConfig
from app.emulator.control import ControlApi
from app.emulator.pacing import SlidingWindow
from app.emulator.rest import RestApi
from app.emulator.subscribers import SubscriberApi, Subscribers


class Emulator:
    """A Cloudonix stand-in: REST API, control endpoints, and the calls it plays."""

    def __init__(self, config: EmulatorConfig, *, prefix: str = "/emulator") -> None:
        self.config = config
        self.calls = CallManager(config)
        self.limiter = SlidingWindow(config.rate_requests, config.rate_period)
        self.subscribers = Subscribers()
        routes: list[BaseRoute] = [
            *RestApi(self.calls, self.limiter).routes(),
            *SubscriberApi(config, self.subscribers).routes(),
            *ControlApi(self.calls).routes(),
        ]
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
        await self.calls.aclose()


def create_emulator(config: EmulatorConfig, *, prefix: str = "/emulator") -> Emulator:
    """Build the emulator; mount with prefix='' or serve standalone with the default."""
    return Emulator(config, prefix=prefix)
