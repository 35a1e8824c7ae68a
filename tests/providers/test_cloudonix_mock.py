"""The Cloudonix adapter against httpx.MockTransport answers shaped like Cloudonix's."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from app.providers.voice.base import (
    CallInfo,
    CallNotFound,
    CallState,
    Originate,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRejected,
    ProviderRetryable,
    VoiceProvider,
)
from app.providers.voice.cloudonix import (
    CloudonixProvider,
    build_cloudonix,
    epoch_ms,
    map_status,
    parse_retry_after,
)
from app.providers.voice.pacing import Pacer
from app.settings import Settings
from tests.providers.fakes import FakeTime, max_in_window

BASE = "https://api.cloudonix.test"
DOMAIN = "acme.cloudonix.net"
KEY = "XI" + "0123456789abcdef" * 2
TOKEN = "16a7294c989b11e7b3d32b9edb8660c7"
AGENT = "+15551230001"
CALLER_ID = "+15559990000"
SESSION_PATH = f"/calls/{DOMAIN}/sessions/{TOKEN}"
START_MS = 1764158400000  # 2025-11-26T12:00:00Z
CUSTOMER_CXML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+15550001111</Dial></Response>'
)

Handler = Callable[[httpx.Request], httpx.Response]


def reply(status: int = 200, body: Any = None, headers: dict[str, str] | None = None) -> Handler:
    """A scripted answer; a fresh Response per request, as a server would send."""

    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return handler


def fail(error: type[httpx.TransportError]) -> Handler:
    """A scripted transport failure."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise error("scripted failure", request=request)

    return handler


def session(
    status: str = "ringing",
    *,
    answer: int | None = None,
    end: int | None = None,
) -> dict[str, Any]:
    """A session object as GET /calls/{domain}/sessions/{token} returns it."""
    return {
        "id": 81723,
        "domainId": 3,
        "subscriberId": 372,
        "domain": DOMAIN,
        "token": TOKEN,
        "callerId": CALLER_ID,
        "destination": AGENT,
        "direction": "outbound-api",
        "status": status,
        "callStartTime": START_MS,
        "callAnswerTime": answer,
        "callEndTime": end,
        "profile": {"trunk-sip-headers": {"X-Secret": "vendor stuff"}},
        "vappServer": "10.0.0.12",
    }


ORIGINATED = {
    "domainId": 3,
    "subscriberId": 372,
    "destination": AGENT,
    "direction": "outbound-api",
    "token": TOKEN,
}


@dataclass
class Seen:
    """One request as the fake platform received it."""

    at: float
    request: httpx.Request


class Platform:
    """A scripted Cloudonix: answers from a queue, then a default; records every request."""

    def __init__(self, fake: FakeTime) -> None:
        self.fake = fake
        self.script: deque[Handler] = deque()
        self.default: Handler = reply(200, session())
        self.seen: list[Seen] = []
        self.client = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(Seen(self.fake.clock(), request))
        handler = self.script.popleft() if self.script else self.default
        return handler(request)

    def then(self, *handlers: Handler) -> None:
        """Queue answers for the next requests."""
        self.script.extend(handlers)

    def provider(
        self, *, limit: int = 100, period: float = 10.0, **kwargs: Any
    ) -> CloudonixProvider:
        """An adapter on this platform with fake time everywhere."""
        pacer = Pacer(limit, period, clock=self.fake.clock, sleep=self.fake.sleep)
        return CloudonixProvider(
            self.client,
            base_url=BASE,
            domain=DOMAIN,
            api_key=KEY,
            pacer=pacer,
            sleep=self.fake.sleep,
            clock=self.fake.clock,
            **kwargs,
        )


@pytest.fixture
def fake() -> FakeTime:
    """Fake monotonic time shared by the pacer, the retries and the platform."""
    return FakeTime()


@pytest.fixture
async def platform(fake: FakeTime) -> AsyncIterator[Platform]:
    """The scripted platform; its HTTP client is closed after the test."""
    scripted = Platform(fake)
    yield scripted
    await scripted.client.aclose()


def originate_request(**overrides: Any) -> Originate:
    """An agent-first callback: ring the agent, then dial the customer."""
    values: dict[str, Any] = {
        "destination": AGENT,
        "caller_id": CALLER_ID,
        "cxml": CUSTOMER_CXML,
        "status_callback": "https://calltrack.test/webhooks/cloudonix/session",
        "timeout_seconds": 25,
    }
    values.update(overrides)
    return Originate(**values)


# --- originate -----------------------------------------------------------------------------


async def test_originate_sends_cloudonix_request(platform: Platform) -> None:
    platform.then(reply(200, ORIGINATED))
    provider: VoiceProvider = platform.provider()
    info = await provider.originate(originate_request())
    assert info == CallInfo(
        call_id=TOKEN,
        state=CallState.QUEUED,
        direction="outbound-api",
        caller_id=CALLER_ID,
        destination=AGENT,
    )
    (seen,) = platform.seen
    request = seen.request
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/calls/{DOMAIN}/application"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert json.loads(request.content) == {
        "destination": AGENT,
        "caller-id": CALLER_ID,
        "cxml": originate_request().cxml,
        "callback": "https://calltrack.test/webhooks/cloudonix/session",
        "timeout": 25,
    }
    assert request.extensions["timeout"] == {
        "connect": 10.0,
        "read": 10.0,
        "write": 10.0,
        "pool": 10.0,
    }


async def test_originate_by_url_without_callback(platform: Platform) -> None:
    platform.then(reply(200, ORIGINATED))
    await platform.provider(timeout=3.0).originate(
        originate_request(cxml=None, url="https://calltrack.test/voice/agent", status_callback=None)
    )
    request = platform.seen[0].request
    assert json.loads(request.content) == {
        "destination": AGENT,
        "caller-id": CALLER_ID,
        "url": "https://calltrack.test/voice/agent",
        "timeout": 25,
    }
    assert request.extensions["timeout"]["read"] == 3.0


@pytest.mark.parametrize(
    "overrides", [{"url": "https://calltrack.test/x"}, {"cxml": None}], ids=["both", "neither"]
)
async def test_originate_needs_exactly_one_application(
    platform: Platform, overrides: dict[str, Any]
) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        await platform.provider().originate(originate_request(**overrides))
    assert platform.seen == []


async def test_originate_without_token_is_outcome_unknown(platform: Platform) -> None:
    platform.then(reply(200, {"domainId": 3}))
    with pytest.raises(ProviderOutcomeUnknown, match="no session token"):
        await platform.provider().originate(originate_request())


async def test_originate_not_retried_after_read_timeout(platform: Platform) -> None:
    platform.then(fail(httpx.ReadTimeout), reply(200, ORIGINATED))
    with pytest.raises(ProviderOutcomeUnknown, match="may have taken effect"):
        await platform.provider().originate(originate_request())
    assert len(platform.seen) == 1


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_originate_not_retried_after_ambiguous_5xx(platform: Platform, status: int) -> None:
    platform.then(reply(status), reply(200, ORIGINATED))
    with pytest.raises(ProviderOutcomeUnknown) as caught:
        await platform.provider().originate(originate_request())
    assert caught.value.status == status
    assert len(platform.seen) == 1


@pytest.mark.parametrize(
    "first",
    [fail(httpx.ConnectError), fail(httpx.ConnectTimeout), reply(503), reply(429)],
    ids=["connect-error", "connect-timeout", "503", "429"],
)
async def test_originate_retried_when_surely_not_placed(platform: Platform, first: Handler) -> None:
    platform.then(first, reply(200, ORIGINATED))
    info = await platform.provider().originate(originate_request())
    assert info.call_id == TOKEN
    assert len(platform.seen) == 2


# --- get_call and status mapping ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "answer", "end", "state"),
    [
        ("new", None, None, CallState.QUEUED),
        ("processing", None, None, CallState.QUEUED),
        ("ringing", None, None, CallState.RINGING),
        ("connected", START_MS + 5000, None, CallState.ANSWERED),
        ("answer", START_MS + 5000, None, CallState.ANSWERED),
        ("answer", START_MS + 5000, START_MS + 65000, CallState.COMPLETED),
        ("connected", START_MS + 5000, START_MS + 65000, CallState.COMPLETED),
        ("busy", None, START_MS + 3000, CallState.BUSY),
        ("noanswer", None, START_MS + 30000, CallState.NO_ANSWER),
        ("cancel", None, START_MS + 2000, CallState.CANCELED),
        ("nocredit", None, START_MS + 1000, CallState.FAILED),
        ("error", None, START_MS + 1000, CallState.FAILED),
        ("ringing", None, START_MS + 30000, CallState.NO_ANSWER),
        ("processing", None, START_MS + 100, CallState.FAILED),
    ],
)
async def test_get_call_maps_status(
    platform: Platform, status: str, answer: int | None, end: int | None, state: CallState
) -> None:
    platform.then(reply(200, session(status, answer=answer, end=end)))
    info = await platform.provider().get_call(TOKEN)
    assert info.state is state
    assert info.extra == {"status": status}
    request = platform.seen[0].request
    assert request.method == "GET"
    assert request.url.path == SESSION_PATH


async def test_get_call_converts_times_and_drops_vendor_fields(platform: Platform) -> None:
    platform.then(reply(200, session("answer", answer=START_MS + 4500, end=START_MS + 64500)))
    info = await platform.provider().get_call(TOKEN)
    assert info.call_id == TOKEN
    assert info.direction == "outbound-api"
    assert info.caller_id == CALLER_ID
    assert info.destination == AGENT
    assert info.started_at == datetime(2025, 11, 26, 12, 0, tzinfo=UTC)
    assert info.answered_at == datetime(2025, 11, 26, 12, 0, 4, 500000, tzinfo=UTC)
    assert info.ended_at == datetime(2025, 11, 26, 12, 1, 4, 500000, tzinfo=UTC)
    assert info.started_at is not None
    assert info.started_at.tzinfo is UTC
    assert "vendor stuff" not in repr(info)
    assert "vappServer" not in repr(info)


def test_map_status_unknown_values() -> None:
    assert map_status("something-new", answered=False, ended=False) is CallState.QUEUED
    assert map_status("something-new", answered=True, ended=False) is CallState.ANSWERED
    assert map_status(None, answered=True, ended=True) is CallState.COMPLETED
    assert map_status("BUSY", answered=False, ended=True) is CallState.BUSY


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (START_MS, datetime(2025, 11, 26, 12, 0, tzinfo=UTC)),
        (str(START_MS), datetime(2025, 11, 26, 12, 0, tzinfo=UTC)),
        ("2025-11-26T12:00:00", datetime(2025, 11, 26, 12, 0, tzinfo=UTC)),
        (None, None),
        (0, None),
        ("", None),
        (True, None),
        ("soon", None),
        (10**30, None),
    ],
)
def test_epoch_ms(value: object, expected: datetime | None) -> None:
    assert epoch_ms(value) == expected


async def test_get_call_404_is_call_not_found(platform: Platform) -> None:
    platform.then(reply(404, {"message": "Session not found"}))
    with pytest.raises(CallNotFound) as caught:
        await platform.provider().get_call(TOKEN)
    assert caught.value.status == 404
    assert len(platform.seen) == 1


async def test_get_call_rejects_non_json(platform: Platform) -> None:
    platform.then(lambda request: httpx.Response(200, text="<html>proxy</html>"))
    with pytest.raises(ProviderError, match="not JSON") as caught:
        await platform.provider().get_call(TOKEN)
    assert not isinstance(caught.value, ProviderRetryable)


@pytest.mark.parametrize("call_id", ["", ".", "..", "../../customers/self", "a%2Fb", "x" * 129])
async def test_malformed_call_ids_never_reach_the_platform(
    platform: Platform, call_id: str
) -> None:
    provider = platform.provider()
    with pytest.raises(CallNotFound):
        await provider.get_call(call_id)
    await provider.hangup(call_id)
    assert platform.seen == []


# --- hangup --------------------------------------------------------------------------------


async def test_hangup_sends_delete_with_reason(platform: Platform) -> None:
    platform.then(reply(204))
    await platform.provider().hangup(TOKEN, reason="busy")
    request = platform.seen[0].request
    assert request.method == "DELETE"
    assert request.url.path == SESSION_PATH
    assert request.url.params["reason"] == "busy"


async def test_hangup_of_a_gone_call_is_fine(platform: Platform) -> None:
    platform.then(reply(404, {"message": "not found"}))
    await platform.provider().hangup(TOKEN)
    assert "reason" not in platform.seen[0].request.url.params


async def test_hangup_retries_after_read_timeout(platform: Platform) -> None:
    # The first DELETE may have worked; the repeat then finds the session gone.
    platform.then(fail(httpx.ReadTimeout), reply(404))
    await platform.provider().hangup(TOKEN)
    assert len(platform.seen) == 2


# --- retries -------------------------------------------------------------------------------


async def test_429_then_200_honours_retry_after(platform: Platform, fake: FakeTime) -> None:
    platform.then(reply(429, {"message": "rate limited"}, {"Retry-After": "7"}))
    info = await platform.provider().get_call(TOKEN)
    assert info.state is CallState.RINGING
    first, second = platform.seen
    assert second.at - first.at >= 7
    assert max(fake.sleeps) >= 7


async def test_429_http_date_retry_after(platform: Platform, fake: FakeTime) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    platform.then(reply(429, headers={"Retry-After": when}))
    await platform.provider().get_call(TOKEN)
    first, second = platform.seen
    assert 28 <= second.at - first.at <= 32


async def test_429_holds_other_callers_too(platform: Platform, fake: FakeTime) -> None:
    platform.then(reply(429, headers={"Retry-After": "5"}))
    provider = platform.provider(max_attempts=1)
    with pytest.raises(ProviderRetryable):
        await provider.get_call(TOKEN)
    await provider.get_call(TOKEN)  # a different call, paced by the same Pacer
    first, second = platform.seen
    assert second.at - first.at >= 5
    assert fake.sleeps == [5.0]


async def test_retry_after_beyond_max_elapsed_gives_up_at_once(platform: Platform) -> None:
    platform.then(reply(429, headers={"Retry-After": "120"}))
    with pytest.raises(ProviderRetryable) as caught:
        await platform.provider(max_elapsed=60.0).get_call(TOKEN)
    assert caught.value.status == 429
    assert caught.value.retry_after == 120
    assert len(platform.seen) == 1


async def test_503_503_200(platform: Platform, fake: FakeTime) -> None:
    platform.then(reply(503), reply(503))
    info = await platform.provider(backoff_base=0.5).get_call(TOKEN)
    assert info.call_id == TOKEN
    assert len(platform.seen) == 3
    first, second = fake.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


async def test_503_forever_gives_up_after_max_attempts(platform: Platform) -> None:
    platform.then(*(reply(503) for _ in range(5)))
    with pytest.raises(ProviderRetryable) as caught:
        await platform.provider(max_attempts=4).get_call(TOKEN)
    assert caught.value.status == 503
    assert len(platform.seen) == 4


async def test_backoff_is_capped(platform: Platform, fake: FakeTime) -> None:
    platform.then(*(reply(500) for _ in range(8)))
    with pytest.raises(ProviderRetryable):
        await platform.provider(
            max_attempts=8, backoff_base=1.0, backoff_max=4.0, max_elapsed=1000.0
        ).get_call(TOKEN)
    assert len(fake.sleeps) == 7
    assert all(sleep <= 4.0 for sleep in fake.sleeps)
    assert fake.sleeps[-1] >= 2.0


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError]
)
async def test_get_retries_after_transport_errors(
    platform: Platform, error: type[httpx.TransportError]
) -> None:
    platform.then(fail(error))
    info = await platform.provider().get_call(TOKEN)
    assert info.call_id == TOKEN
    assert len(platform.seen) == 2


async def test_timeouts_forever_end_retryable(platform: Platform) -> None:
    platform.default = fail(httpx.ReadTimeout)
    with pytest.raises(ProviderRetryable, match="ReadTimeout"):
        await platform.provider(max_attempts=3).get_call(TOKEN)
    assert len(platform.seen) == 3


async def test_401_rejected_without_retry(platform: Platform) -> None:
    platform.then(reply(401, {"message": f"invalid key {KEY}"}))
    with pytest.raises(ProviderRejected) as caught:
        await platform.provider().originate(originate_request())
    assert caught.value.status == 401
    assert "lacks rights" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(platform.seen) == 1


async def test_400_carries_the_platform_message(platform: Platform) -> None:
    message = "Invalid destination +1 (555) 123-0001: " + "x" * 500
    platform.then(reply(400, {"status": 400, "message": message}))
    with pytest.raises(ProviderRejected) as caught:
        await platform.provider().originate(originate_request())
    text = str(caught.value)
    assert caught.value.status == 400
    assert "Invalid destination [number]" in text
    assert "555" not in text
    assert len(text) < 300
    assert len(platform.seen) == 1


async def test_400_with_text_body(platform: Platform) -> None:
    platform.then(lambda request: httpx.Response(400, text=f"bad\r\nrequest {KEY}"))
    with pytest.raises(ProviderRejected, match=r"HTTP 400\): bad request \[key\]"):
        await platform.provider().get_call(TOKEN)


async def test_retries_logged_without_pii(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    platform.then(reply(503), fail(httpx.ConnectError))
    with caplog.at_level(logging.WARNING, logger="calltrack.voice"):
        await platform.provider().originate(originate_request())
    retries = [r for r in caplog.records if r.name == "calltrack.voice"]
    assert len(retries) == 2
    first, second = (r.getMessage() for r in retries)
    assert "POST /calls/{domain}/application" in first
    assert "HTTP 503" in first
    assert "attempt 1/4" in first
    assert "ConnectError" in second
    assert "attempt 2/4" in second
    text = caplog.text
    assert AGENT not in text
    assert "5550001111" not in text
    assert KEY not in text


async def test_giving_up_is_logged(platform: Platform, caplog: pytest.LogCaptureFixture) -> None:
    platform.default = reply(502)
    with (
        caplog.at_level(logging.WARNING, logger="calltrack.voice"),
        pytest.raises(ProviderRetryable),
    ):
        await platform.provider(max_attempts=2).get_call(TOKEN)
    assert "gave up (HTTP 502) after 2 attempt(s)" in caplog.text


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("12", now=now) == 12
    assert parse_retry_after(" 1.5 ", now=now) == 1.5
    assert parse_retry_after("-3", now=now) == 0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:09 GMT", now=now) == 9
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0
    for bad in (None, "", "soon", "nan", "inf"):
        assert parse_retry_after(bad, now=now) is None


def test_repr_hides_the_key(platform: Platform) -> None:
    assert KEY not in repr(platform.provider())


async def test_constructor_checks() -> None:
    pacer = Pacer(1, 1.0)
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="http"):
            CloudonixProvider(client, base_url="ftp://x", domain=DOMAIN, api_key=KEY, pacer=pacer)
        with pytest.raises(ValueError, match="required"):
            CloudonixProvider(client, base_url=BASE, domain="", api_key=KEY, pacer=pacer)


# --- pacing --------------------------------------------------------------------------------


async def test_pacer_spaces_25_requests(platform: Platform, fake: FakeTime) -> None:
    provider = platform.provider(limit=10, period=10.0)
    for _ in range(25):
        await provider.get_call(TOKEN)
    times = [seen.at for seen in platform.seen]
    assert len(times) == 25
    assert max_in_window(times, 10.0) == 10
    assert times[-1] - times[0] >= 20.0


async def test_pacer_under_concurrency(platform: Platform, fake: FakeTime) -> None:
    provider = platform.provider(limit=10, period=10.0)
    infos = await asyncio.gather(*(provider.get_call(TOKEN) for _ in range(30)))
    assert len(infos) == 30
    times = [seen.at for seen in platform.seen]
    assert max_in_window(times, 10.0) <= 10
    assert max(times) - min(times) >= 20.0


async def test_pacer_serves_waiters_in_arrival_order(fake: FakeTime) -> None:
    pacer = Pacer(2, 1.0, clock=fake.clock, sleep=fake.sleep)
    order: list[int] = []

    async def take(i: int) -> None:
        await pacer.acquire()
        order.append(i)

    await asyncio.gather(*(take(i) for i in range(8)))
    assert order == list(range(8))


async def test_pacer_hold_and_margin(fake: FakeTime) -> None:
    pacer = Pacer(1, 2.0, margin=0.5, clock=fake.clock, sleep=fake.sleep)
    start = fake.now
    await pacer.acquire()
    assert fake.now == start
    await pacer.acquire()
    assert fake.now == start + 2.5
    pacer.hold(10.0)
    pacer.hold(1.0)  # a shorter hold does not shorten the longer one
    await pacer.acquire()
    assert fake.now == start + 12.5
    pacer.hold()  # default: one slot's share of the period
    assert pacer.delay() == 2.5


async def test_pacer_cancelled_waiter_frees_the_queue() -> None:
    pacer = Pacer(1, 100.0)  # real clock: the waiter below really blocks
    await pacer.acquire()
    waiter = asyncio.ensure_future(pacer.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not pacer._lock.locked()


def test_pacer_checks_arguments() -> None:
    with pytest.raises(ValueError, match="limit"):
        Pacer(0, 1.0)
    with pytest.raises(ValueError, match="period"):
        Pacer(1, 0.0)


# --- construction from settings --------------------------------------------------------------


async def test_build_cloudonix_from_settings() -> None:
    settings = Settings.model_validate(
        {
            "cloudonix_api_key": KEY,
            "cloudonix_domain": DOMAIN,
            "cloudonix_base_url": BASE + "/",
            "cloudonix_rate_requests": 7,
            "cloudonix_rate_period": 3.0,
            "cloudonix_timeout": 4.0,
            "cloudonix_max_attempts": 2,
            "webhook_token": "w" * 24,
        }
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        provider = build_cloudonix(settings, client)
        assert provider.name == "cloudonix"
        assert provider._pacer.limit == 7
        assert provider._pacer.period == 3.0
        assert provider._max_attempts == 2
        await provider.hangup(TOKEN)
        await provider.aclose()
        assert not client.is_closed
    assert str(seen[0].url) == f"{BASE}{SESSION_PATH}"
    assert seen[0].extensions["timeout"]["connect"] == 4.0


async def test_build_cloudonix_needs_a_key() -> None:
    settings = Settings.model_validate({"provider": "emulator"})
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match="API_KEY"):
            build_cloudonix(settings, client)
