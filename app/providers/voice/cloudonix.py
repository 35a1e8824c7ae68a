"""The Cloudonix adapter: call control over Cloudonix's REST API, behind the VoiceProvider Protocol.

Requests go through one shared httpx.AsyncClient (owned by the app, never closed here), one
Pacer per domain (Cloudonix allows 10 requests per 10 seconds) and tenacity retries with
jittered exponential backoff. Nothing Cloudonix-shaped leaves this module: answers become
base.py's dataclasses, failures become base.py's errors with a short, cleaned message.

What is retried, and why originate is different:
- GET and DELETE are idempotent (a repeated DELETE finds the call gone: 404, which hangup
  treats as done), so they are retried on every ProviderRetryable: 408, 429, 5xx except 501/505,
  timeouts, connection and protocol errors.
- POST originate places a call; repeating one that reached the platform rings the
  destination twice. It is retried only when the request surely did not take effect:
  connection failures (nothing was sent: connect error, connect or pool timeout), 429 (the
  rate limiter answers before the request is handled), 408 (the server gave up reading it)
  and 503 (the platform declined to take it). A read or write timeout, a dropped connection,
  500, 502 and 504 may all come after the call was placed, so originate raises
  ProviderOutcomeUnknown at once and the caller decides (e.g. look for the session first).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from app.providers.voice.base import (
    CallInfo,
    CallNotFound,
    CallState,
    Originate,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
    Subscriber,
)
from app.providers.voice.pacing import Pacer
from app.settings import Settings

logger = logging.getLogger("calltrack.voice")

ORIGINATE_PATH = "/calls/{domain}/application"
SESSION_PATH = "/calls/{domain}/sessions/{token}"
SUBSCRIBERS_PATH = "/customers/self/domains/{domain}/subscribers"
SUBSCRIBER_PATH = "/customers/self/domains/{domain}/subscribers/{token}"

# Cloudonix session statuses that settle the call's fate on their own.
_FINAL_STATUSES: Mapping[str, CallState] = {
    "busy": CallState.BUSY,
    "noanswer": CallState.NO_ANSWER,
    "no-answer": CallState.NO_ANSWER,
    "cancel": CallState.CANCELED,
    "canceled": CallState.CANCELED,
    "nocredit": CallState.FAILED,
    "error": CallState.FAILED,
    "failed": CallState.FAILED,
}
_LIVE_STATUSES: Mapping[str, CallState] = {
    "new": CallState.QUEUED,
    "processing": CallState.QUEUED,
    "ringing": CallState.RINGING,
    "connected": CallState.ANSWERED,
    "answer": CallState.ANSWERED,
    "answered": CallState.ANSWERED,
}
# Answered immediately: the server saw the request and declined it before doing anything.
_RETRY_ALWAYS = frozenset({408, 429, 503})
# Not retried at all: the server will not support the request later either.
_NEVER_RETRY_5XX = frozenset({501, 505})
_MESSAGE_LIMIT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Phone numbers are PII: runs of 7+ digits (with separators) are masked in error messages.
_LONG_NUMBER = re.compile(r"\+?\d(?:[\s().-]{0,2}\d){6,}")
# Session tokens are hex strings; anything beyond URL-unreserved characters is refused.
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{1,128}$")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class CloudonixProvider:
    """Cloudonix call control: originate, look up and hang up calls of one domain."""

    name = "cloudonix"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        domain: str,
        api_key: str,
        pacer: Pacer,
        max_attempts: int = 4,
        timeout: float = 10.0,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        max_elapsed: float = 60.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must be an http(s) URL")
        if not domain or not api_key:
            raise ValueError("domain and api_key are required")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._domain = domain
        self._api_key = api_key
        self._pacer = pacer
        self._max_attempts = max_attempts
        self._timeout = httpx.Timeout(connect=timeout, read=timeout, write=timeout, pool=timeout)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._max_elapsed = max_elapsed
        self._sleep = sleep
        self._clock = clock
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        # Never the key: reprs end up in logs and tracebacks.
        return f"CloudonixProvider(base_url={self._base_url!r}, domain={self._domain!r})"

    async def originate(self, request: Originate) -> CallInfo:
        """Place a call: ring the destination, then run the CXML (inline or by URL)."""
        if (request.cxml is None) == (request.url is None):
            raise ValueError("originate needs exactly one of cxml or url")
        body: dict[str, Any] = {
            "destination": request.destination,
            "caller-id": request.caller_id,
            "timeout": request.timeout_seconds,
        }
        if request.cxml is not None:
            body["cxml"] = request.cxml
        else:
            body["url"] = request.url
        if request.status_callback is not None:
            body["callback"] = request.status_callback
        response = await self._request("POST", ORIGINATE_PATH, json_body=body, idempotent=False)
        # A 2xx means the call may be ringing, so an unreadable answer is not a plain failure.
        data = _json_object(response, ProviderOutcomeUnknown)
        token = data.get("token")
        if not isinstance(token, str) or not token:
            # The platform said yes, so a call may be ringing that we cannot track.
            raise ProviderOutcomeUnknown(
                "Cloudonix accepted the call but returned no session token",
                status=response.status_code,
            )
        direction = data.get("direction")
        destination = data.get("destination")
        return CallInfo(
            call_id=token,
            state=CallState.QUEUED,
            direction=direction if isinstance(direction, str) else "outbound-api",
            caller_id=request.caller_id,
            destination=destination if isinstance(destination, str) else request.destination,
        )

    async def get_call(self, call_id: str) -> CallInfo:
        """The call's current state; CallNotFound when Cloudonix does not know the session."""
        response = await self._request("GET", SESSION_PATH, token=call_id, idempotent=True)
        return _session_info(_json_object(response), call_id)

    async def hangup(self, call_id: str, *, reason: str | None = None) -> None:
        """End the call; a session that is already gone is not an error."""
        params = {"reason": reason} if reason else None
        try:
            await self._request(
                "DELETE", SESSION_PATH, token=call_id, params=params, idempotent=True
            )
        except CallNotFound:
            return

    async def create_subscriber(self, subscriber: Subscriber) -> None:
        """Create a domain subscriber (msisdn and SIP password) that can register over WSS."""
        body: dict[str, Any] = {
            "msisdn": subscriber.msisdn,
            "sip-password": subscriber.sip_password,
            "profile": dict(subscriber.profile),
        }
        # Not idempotent for the retry policy: a create that may have happened is not
        # repeated blindly (a second one would be refused as a duplicate anyway).
        await self._request("POST", SUBSCRIBERS_PATH, json_body=body, idempotent=False)

    async def delete_subscriber(self, msisdn: str) -> None:
        """Delete a subscriber by msisdn; one already gone is not an error."""
        try:
            await self._request("DELETE", SUBSCRIBER_PATH, token=msisdn, idempotent=True)
        except CallNotFound:
            return

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the app."""

    async def _request(
        self,
        method: str,
        template: str,
        *,
        token: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool,
    ) -> httpx.Response:
        if token is not None and (not _TOKEN.match(token) or token in {".", ".."}):
            # Such an id cannot name a Cloudonix session; sending it could address another path.
            raise CallNotFound("not a Cloudonix session token")
        # Path segments are percent-encoded so a hostile token cannot walk to another path.
        path = template.format(
            domain=quote(self._domain, safe=""), token=quote(token or "", safe="")
        )
        url = self._base_url + path
        start = self._clock()

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self._max_attempts:
                return True
            elapsed = self._clock() - start + (state.upcoming_sleep or 0.0)
            return elapsed > self._max_elapsed

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            logger.warning(
                "cloudonix %s %s failed (%s), attempt %d/%d, retrying in %.2fs",
                method,
                template,
                _reason(error),
                state.attempt_number,
                self._max_attempts,
                state.upcoming_sleep,
            )

        retrying = AsyncRetrying(
            sleep=self._sleep,
            stop=stop,
            wait=self._wait,
            retry=retry_if_exception_type(ProviderRetryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(
                        method, url, template, json_body, params, idempotent=idempotent
                    )
        except ProviderRetryable as error:
            logger.warning(
                "cloudonix %s %s gave up (%s) after %d attempt(s)",
                method,
                template,
                _reason(error),
                retrying.statistics.get("attempt_number", 1),
            )
            raise
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        # "Equal jitter": half the exponential step is fixed, half random, so waits grow
        # steadily yet concurrent callers that failed together do not retry together.
        step = min(self._backoff_max, self._backoff_base * 2.0 ** (state.attempt_number - 1))
        wait = step / 2 + random.uniform(0, step / 2)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, ProviderRetryable) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return wait

    async def _attempt(
        self,
        method: str,
        url: str,
        template: str,
        json_body: Mapping[str, Any] | None,
        params: Mapping[str, str] | None,
        *,
        idempotent: bool,
    ) -> httpx.Response:
        await self._pacer.acquire()
        try:
            response = await self._client.request(
                method,
                url,
                json=json_body,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # Nothing reached the platform: safe to repeat even a POST.
            raise ProviderRetryable(
                f"could not connect to Cloudonix ({self._describe(exc)})"
            ) from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            message = f"no answer from Cloudonix ({self._describe(exc)})"
            if idempotent:
                raise ProviderRetryable(message) from exc
            raise ProviderOutcomeUnknown(message + "; the request may have taken effect") from exc
        except httpx.HTTPError as exc:
            raise ProviderError(f"request to Cloudonix failed ({self._describe(exc)})") from exc
        self._check(response, template, idempotent=idempotent)
        return response

    def _check(self, response: httpx.Response, template: str, *, idempotent: bool) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            self._pacer.hold(retry_after)
        if status in _RETRY_ALWAYS or (status >= 500 and status not in _NEVER_RETRY_5XX):
            message = f"Cloudonix answered HTTP {status}"
            if status in _RETRY_ALWAYS or idempotent:
                raise ProviderRetryable(message, status=status, retry_after=retry_after)
            raise ProviderOutcomeUnknown(
                message + "; the request may have taken effect", status=status
            )
        if status in (401, 403):
            raise ProviderRejected(
                f"Cloudonix refused the API key (HTTP {status}): it is invalid or lacks rights "
                f"on domain {self._domain!r}; placing calls needs a domain-admin key",
                status=status,
            )
        if status in (404, 410) and template in (SESSION_PATH, SUBSCRIBER_PATH):
            raise CallNotFound(f"Cloudonix has no such session (HTTP {status})", status=status)
        detail = self._platform_message(response)
        suffix = f": {detail}" if detail else ""
        raise ProviderRejected(
            f"Cloudonix rejected the request (HTTP {status}){suffix}", status=status
        )

    def _platform_message(self, response: httpx.Response) -> str:
        try:
            data: Any = response.json()
        except ValueError:
            text = response.text if "json" not in response.headers.get("content-type", "") else ""
            return self._scrub(text)
        for key in ("message", "error", "detail", "reason"):
            value = data.get(key) if isinstance(data, dict) else None
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str):
                return self._scrub(value)
        return ""

    def _describe(self, exc: BaseException) -> str:
        detail = self._scrub(str(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _scrub(self, text: str) -> str:
        text = text.replace(self._api_key, "[key]")
        text = _CONTROL.sub(" ", text).strip()
        text = _LONG_NUMBER.sub("[number]", text)
        if len(text) > _MESSAGE_LIMIT:
            text = text[: _MESSAGE_LIMIT - 1] + "…"
        return text


def build_cloudonix(
    settings: Settings,
    client: httpx.AsyncClient,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
) -> CloudonixProvider:
    """The Cloudonix provider described by the CALLTRACK_CLOUDONIX_* settings.

    `base_url` and `api_key` override the settings' (the built-in emulator's address and key).
    """
    configured = settings.cloudonix_api_key
    key = api_key or (configured.get_secret_value() if configured is not None else None)
    if key is None:
        raise ValueError("CALLTRACK_CLOUDONIX_API_KEY is not set")
    period = settings.cloudonix_rate_period
    pacer = Pacer(
        settings.cloudonix_rate_requests,
        period,
        # Half a second on Cloudonix's 10 s window covers the spread in request latency.
        margin=min(0.5, period * 0.05),
    )
    return CloudonixProvider(
        client,
        base_url=base_url or settings.cloudonix_base_url,
        domain=settings.voice_domain,
        api_key=key,
        pacer=pacer,
        max_attempts=settings.cloudonix_max_attempts,
        timeout=settings.cloudonix_timeout,
    )


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(seconds, 0.0)


def map_status(status: str | None, *, answered: bool, ended: bool) -> CallState:
    """A CallState from Cloudonix's session status and whether it was answered / has ended."""
    raw = (status or "").strip().lower()
    if raw in _FINAL_STATUSES:
        return _FINAL_STATUSES[raw]
    if ended:
        # Ended with a live-looking status: the last update before the end was all we saw.
        if answered or raw in {"connected", "answer", "answered", "completed"}:
            return CallState.COMPLETED
        return CallState.NO_ANSWER if raw == "ringing" else CallState.FAILED
    if raw in _LIVE_STATUSES:
        return _LIVE_STATUSES[raw]
    return CallState.ANSWERED if answered else CallState.QUEUED


def epoch_ms(value: object) -> datetime | None:
    """An aware UTC datetime from Cloudonix's epoch milliseconds (None when absent or zero)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text)
            except ValueError:
                return None
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if not isinstance(value, int | float) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _session_info(data: Mapping[str, Any], call_id: str) -> CallInfo:
    started = epoch_ms(data.get("callStartTime"))
    answered = epoch_ms(data.get("callAnswerTime"))
    ended = epoch_ms(data.get("callEndTime"))
    raw_status = data.get("status")
    status = raw_status if isinstance(raw_status, str) else None
    token = data.get("token")
    direction = data.get("direction")
    caller_id = data.get("callerId")
    destination = data.get("destination")
    return CallInfo(
        call_id=token if isinstance(token, str) and token else call_id,
        state=map_status(status, answered=answered is not None, ended=ended is not None),
        direction=direction if isinstance(direction, str) else "unknown",
        caller_id=caller_id if isinstance(caller_id, str) else None,
        destination=destination if isinstance(destination, str) else None,
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        extra={"status": status} if status else {},
    )


def _json_object(
    response: httpx.Response, error: type[ProviderError] = ProviderError
) -> dict[str, Any]:
    try:
        data: Any = response.json()
    except ValueError as exc:
        raise error(
            "Cloudonix answered with a body that is not JSON", status=response.status_code
        ) from exc
    # Session updates sometimes come as one-element lists; accept the same shape here.
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise error("Cloudonix answered with an unexpected body", status=response.status_code)
    return data


def _reason(error: BaseException | None) -> str:
    if isinstance(error, ProviderError) and error.status is not None:
        return f"HTTP {error.status}"
    cause = error.__cause__ if error is not None else None
    return type(cause or error).__name__
