"""The callback rules on their own: backoff, rounds, business hours, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.db.models import CallbackAttempt, CallbackRequest, Pool
from app.services.callback_flow import (
    Policy,
    agent_answered,
    agent_failed,
    agents_of,
    backoff,
    customer_failed,
)
from app.settings import Settings

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York
POLICY = Policy.of(Settings(database_url="sqlite+aiosqlite:///:memory:"))
NY_OFFICE: dict[str, object] = {
    "timezone": "America/New_York",
    "weekly": {"wed": [["09:00", "11:00"]]},
}


def pool(agents: list[str] | None = None, hours: dict[str, object] | None = None) -> Pool:
    return Pool(
        id=1,
        destination="+12125550100",
        fallback_number="+12125550199",
        agents=agents or [],
        business_hours=hours,
    )


def request(**fields: object) -> tuple[CallbackRequest, CallbackAttempt]:
    attempt = CallbackAttempt(id=7, round=1, agent="+12125550111", status="ringing_agent")
    values: dict[str, object] = {
        "id": "cb_" + "a" * 22,
        "status": "calling_agent",
        "attempts": 1,
        "agent_index": 0,
        "current_attempt_id": 7,
        "next_attempt_at": NOW,
        "expires_at": NOW + timedelta(hours=4),
        **fields,
    }
    return CallbackRequest(**values), attempt


def test_backoff_doubles_from_the_base_is_capped_and_jittered_by_a_fifth() -> None:
    assert backoff(POLICY, 1, rand=lambda: 0.5) == timedelta(seconds=300)
    assert backoff(POLICY, 2, rand=lambda: 0.5) == timedelta(seconds=600)
    assert backoff(POLICY, 3, rand=lambda: 0.5) == timedelta(seconds=1200)
    assert backoff(POLICY, 9, rand=lambda: 0.5) == timedelta(seconds=3600)  # the cap
    assert backoff(POLICY, 1, rand=lambda: 0.0) == timedelta(seconds=240)
    assert backoff(POLICY, 1, rand=lambda: 0.999999) < timedelta(seconds=360)


def test_a_pool_without_agents_rings_its_destination() -> None:
    assert agents_of(pool()) == ["+12125550100"]
    assert agents_of(pool(["+12125550111", "+12125550112"])) == ["+12125550111", "+12125550112"]


def test_an_unavailable_agent_hands_over_to_the_next_at_once() -> None:
    req, attempt = request()
    agent_failed(req, attempt, pool(["+1", "+2"]), reason="busy", now=NOW, policy=POLICY)
    assert attempt.status == "agent_unavailable"
    assert (req.status, req.agent_index, req.next_attempt_at) == ("agent_unavailable", 1, NOW)


def test_after_the_last_agent_the_round_waits_for_the_backoff() -> None:
    req, attempt = request(agent_index=1)
    agent_failed(req, attempt, pool(["+1", "+2"]), reason="no-answer", now=NOW, policy=POLICY)
    assert (req.status, req.agent_index) == ("agent_unavailable", 0)
    assert NOW + timedelta(seconds=240) <= req.next_attempt_at <= NOW + timedelta(seconds=360)
    assert req.last_error == "no agent answered (no-answer)"


def test_a_retry_that_falls_off_hours_waits_for_the_next_opening() -> None:
    req, attempt = request(expires_at=NOW + timedelta(days=30))
    # 10:58 in New York; the office closes at 11:00, so a retry 4-6 minutes later is off-hours.
    late = NOW + timedelta(minutes=58)
    customer_failed(req, attempt, pool(hours=NY_OFFICE), status="busy", now=late, policy=POLICY)
    assert req.status == "customer_unreachable"
    assert req.next_attempt_at == datetime(2026, 12, 2, 14, 0, tzinfo=UTC)  # next Wednesday 09:00


def test_a_retry_beyond_the_request_age_fails_it() -> None:
    req, attempt = request(expires_at=NOW + timedelta(minutes=2))
    customer_failed(req, attempt, pool(), status="no-answer", now=NOW, policy=POLICY)
    assert req.status == "failed"
    assert req.ended_at == NOW
    assert req.last_error == "customer no-answer; the request expired"


def test_the_last_round_fails_the_request() -> None:
    req, attempt = request(attempts=POLICY.max_attempts)
    customer_failed(req, attempt, pool(), status="no-answer", now=NOW, policy=POLICY)
    assert req.status == "failed"
    assert req.last_error == f"customer no-answer; {POLICY.max_attempts} attempts made"


def test_events_of_an_attempt_the_request_moved_past_change_only_that_attempt() -> None:
    req, attempt = request(current_attempt_id=8)
    before = (req.status, req.next_attempt_at, req.agent_index)
    agent_failed(req, attempt, pool(["+1", "+2"]), reason="busy", now=NOW, policy=POLICY)
    assert attempt.status == "agent_unavailable"
    assert (req.status, req.next_attempt_at, req.agent_index) == before


def test_an_answering_agent_moves_the_request_to_the_customer_once() -> None:
    req, attempt = request()
    agent_answered(req, attempt, now=NOW, policy=POLICY)
    assert (attempt.status, req.status) == ("agent_answered", "calling_customer")
    assert req.next_attempt_at == NOW + timedelta(seconds=POLICY.customer_ring) + POLICY.check
    later = NOW + timedelta(seconds=5)
    agent_answered(req, attempt, now=later, policy=POLICY)  # a repeated update
    assert attempt.agent_answered_at == NOW
