"""Domain subscribers: SIP identities the REST API creates and the SIP gateway registers.

Cloudonix keeps a subscriber until it is deleted; so does the emulator. The SIP password is
kept to check digests, as the platform must, and never shown again after creation.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from app.emulator.config import EmulatorConfig

MSISDN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
MAX_SUBSCRIBERS = 10_000


@dataclass
class Subscriber:
    """One SIP identity of the domain."""

    id: int
    msisdn: str
    password: str = field(repr=False)
    profile: dict[str, Any]
    active: bool = True

    def public(self, domain: str) -> dict[str, Any]:
        """The subscriber as the API shows it: never the password."""
        return {
            "id": self.id,
            "msisdn": self.msisdn,
            "domain": domain,
            "active": self.active,
            "profile": self.profile,
        }


class Subscribers:
    """The domain's subscribers, by msisdn."""

    def __init__(self) -> None:
        self._by_msisdn: dict[str, Subscriber] = {}
        self._next_id = 1

    def add(self, msisdn: str, password: str, profile: dict[str, Any]) -> Subscriber | None:
        """Create one; None when the msisdn is taken."""
        if msisdn in self._by_msisdn:
            return None
        subscriber = Subscriber(self._next_id, msisdn, password, profile)
        self._next_id += 1
        self._by_msisdn[msisdn] = subscriber
        return subscriber

    def remove(self, msisdn: str) -> bool:
        """Delete one; False when unknown."""
        return self._by_msisdn.pop(msisdn, None) is not None

    def get(self, msisdn: str) -> Subscriber | None:
        """The subscriber, if it exists."""
        return self._by_msisdn.get(msisdn)

    def password_of(self, username: str) -> str | None:
        """The SIP password of an active subscriber (the gateway's directory)."""
        found = self._by_msisdn.get(username)
        return found.password if found is not None and found.active else None

    def __len__(self) -> int:
        return len(self._by_msisdn)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "message": message}, status)


class SubscriberApi:
    """POST and DELETE /customers/self/domains/{domain}/subscribers[/{msisdn}]."""

    def __init__(self, config: EmulatorConfig, subscribers: Subscribers) -> None:
        self.config = config
        self.subscribers = subscribers

    def routes(self) -> list[BaseRoute]:
        """The routes, relative to the emulator's prefix."""
        base = "/customers/self/domains/{domain}/subscribers"
        return [
            Route(base, self.create, methods=["POST"]),
            Route(base + "/{msisdn}", self.read, methods=["GET"]),
            Route(base + "/{msisdn}", self.delete, methods=["DELETE"]),
        ]

    def _admit(self, request: Request) -> JSONResponse | None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.config.api_key}".encode()):
            return _error(401, "invalid or missing API key")
        if request.path_params["domain"] != self.config.domain:
            return _error(404, "domain not found")
        return None

    async def create(self, request: Request) -> Response:
        """Create a subscriber from `msisdn`, `sip-password` and an optional `profile`."""
        refused = self._admit(request)
        if refused is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body must be JSON")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object")
        msisdn, password = body.get("msisdn"), body.get("sip-password")
        profile = body.get("profile") or {}
        if not isinstance(msisdn, str) or not MSISDN.match(msisdn):
            return _error(400, "msisdn is required")
        if not isinstance(password, str) or len(password) < 8:
            return _error(400, "sip-password must be at least 8 characters")
        if not isinstance(profile, dict):
            return _error(400, "profile must be an object")
        if len(self.subscribers) >= MAX_SUBSCRIBERS:
            return _error(507, "too many subscribers")
        created = self.subscribers.add(msisdn, password, profile)
        if created is None:
            return _error(409, f"subscriber {msisdn} exists")
        return JSONResponse(created.public(self.config.domain))

    async def read(self, request: Request) -> Response:
        """One subscriber, without its password."""
        refused = self._admit(request)
        if refused is not None:
            return refused
        found = self.subscribers.get(request.path_params["msisdn"])
        if found is None:
            return _error(404, "subscriber not found")
        return JSONResponse(found.public(self.config.domain))

    async def delete(self, request: Request) -> Response:
        """Delete a subscriber: its registrations and calls can no longer authenticate."""
        refused = self._admit(request)
        if refused is not None:
            return refused
        if not self.subscribers.remove(request.path_params["msisdn"]):
            return _error(404, "subscriber not found")
        return JSONResponse({"status": 200, "message": "deleted"})
