"""Requests from the emulated Cloudonix to the service: voice application, callbacks, CDRs."""

from __future__ import annotations

import json
from typing import Any
from xml.etree.ElementTree import Element, ParseError

import httpx
from defusedxml import ElementTree as SafeXml

from app.emulator.config import EmulatorConfig
from app.emulator.models import Call, Json

USER_AGENT = "Cloudonix APP.Core/5.3.673"


class ServiceClient:
    """One shared httpx client, created on first use (a mounted app gets no lifespan)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """The HTTP client, created lazily."""
        if self._client is None:
            # trust_env=False: a proxy from the environment must not sit between the
            # emulator and a service on 127.0.0.1.
            self._client = httpx.AsyncClient(
                transport=self.config.transport,
                timeout=self.config.http_timeout,
                trust_env=False,
                follow_redirects=False,
            )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if one was made."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def headers(self, call: Call) -> dict[str, str]:
        """Headers of every request about `call`, as captured from real Cloudonix."""
        return {
            "Authorization": f"Bearer {self.config.webhook_token}",
            "X-CX-APIKey": self.config.api_key,
            "X-CX-Domain": call.domain,
            "X-CX-Session": call.token,
            "X-CX-From": call.from_,
            "X-CX-To": call.to,
            "X-CX-Source": call.source,
            "User-Agent": USER_AGENT,
        }

    def voice_url(self, call: Call) -> str:
        """The service's voice application URL."""
        return f"{call.service_url}/webhooks/cloudonix/voice"

    def voice_fields(self, call: Call) -> Json:
        """The voice application request's body."""
        profile: Json = {}
        if call.direction == "subscriber":
            # What Cloudonix reports of a subscriber's INVITE: its custom headers.
            profile["subscriber-sip-headers"] = dict(call.sip_headers)
        if call.direction == "inbound":
            profile["trunk-sip-headers"] = {
                "From": f"<sip:{call.from_}@trunk.emulator>",
                "To": f"<sip:{call.to}@{call.domain}>",
                "Call-ID": call.call_id,
            }
        return {
            "CallSid": call.token,
            "Session": call.token,
            "From": call.from_,
            "To": call.to,
            "CallerName": call.caller_name,
            "Direction": call.direction,
            "CallStatus": "in-progress",
            "Domain": call.domain,
            "AccountSid": call.domain,
            "ApiVersion": "1",
            "ApplicationSid": "1",
            "SessionData": {
                "token": call.token,
                "status": call.status,
                "callStartTime": call.epoch_ms(0.0),
                "profile": profile,
            },
            "Application": {"name": "calltrack", "url": self.voice_url(call)},
        }

    async def fetch_cxml(
        self, call: Call, url: str, *, method: str = "POST", extra: Json | None = None
    ) -> tuple[int | None, Element | None]:
        """Request CXML; the HTTP status and the parsed <Response>, or None (error noted)."""
        fields = self.voice_fields(call) | (extra or {})
        try:
            if method.upper() == "GET":
                flat = {k: _text(v) for k, v in fields.items() if not isinstance(v, dict | list)}
                response = await self.client().get(url, params=flat, headers=self.headers(call))
            else:
                response = await self.client().post(url, json=fields, headers=self.headers(call))
        except httpx.HTTPError as exc:
            call.errors.append(f"{method} {url}: {type(exc).__name__}: {exc}")
            return None, None
        if not response.is_success:
            call.errors.append(f"{method} {url}: HTTP {response.status_code}")
            return response.status_code, None
        call.cxml.append(response.text)
        return response.status_code, parse_cxml(call, response.text, url)

    async def post_json(self, call: Call, url: str, payload: Any, what: str) -> bool:
        """POST a JSON report; failures are noted in the call's errors, never raised."""
        try:
            response = await self.client().post(url, json=payload, headers=self.headers(call))
        except httpx.HTTPError as exc:
            call.errors.append(f"{what} to {url}: {type(exc).__name__}: {exc}")
            return False
        if not response.is_success:
            call.errors.append(f"{what} to {url}: HTTP {response.status_code}")
            return False
        return True


def parse_cxml(call: Call, text: str, source: str) -> Element | None:
    """Parse a CXML document safely; None (error noted) unless it is a <Response>."""
    try:
        root: Element = SafeXml.fromstring(text.strip())
    except (ParseError, ValueError) as exc:
        call.errors.append(f"CXML from {source} does not parse: {exc}")
        return None
    if root.tag != "Response":
        call.errors.append(f"CXML from {source}: root is <{root.tag}>, not <Response>")
        return None
    return root


def _text(value: object) -> str:
    """A query-string value: booleans and None the way JSON spells them."""
    if isinstance(value, str):
        return value
    return json.dumps(value)
