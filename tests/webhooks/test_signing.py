"""Unit tests, no database: signatures, retry timing and the requests deliveries make."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from app.services import delivery_requests, dispatcher, signing

# A known vector, computed independently of the code under test with OpenSSL:
#   printf '%s' '1795694400.{"id":"evt_test","type":"call.completed"}' \
#     | openssl dgst -sha256 -hmac 'whsec_known_vector_secret'
VECTOR_SECRET = "whsec_known_vector_secret"
VECTOR_TIME = 1795694400  # 2026-11-26T12:00:00Z
VECTOR_BODY = b'{"id":"evt_test","type":"call.completed"}'
VECTOR_HEX = "a29be0d358d658ad0400ffa261f8ad89511efc29e887be2635b9b263bb84384e"
#   printf '%s' '1795694400.' | openssl dgst -sha256 -hmac 'whsec_known_vector_secret'
VECTOR_EMPTY_HEX = "afaab160255fb7985af0572cb6688d4cf8e834ee8e0dc919b6a8d88c45e19b9b"

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


# --- signing ------------------------------------------------------------------------------


def test_digest_and_header_match_the_openssl_vector() -> None:
    assert signing.digest(VECTOR_SECRET, VECTOR_TIME, VECTOR_BODY) == VECTOR_HEX
    assert signing.digest(VECTOR_SECRET, VECTOR_TIME, b"") == VECTOR_EMPTY_HEX
    assert (
        signing.header(VECTOR_SECRET, VECTOR_TIME, VECTOR_BODY)
        == f"t={VECTOR_TIME},v1={VECTOR_HEX}"
    )


def test_the_vector_header_verifies() -> None:
    value = f"t={VECTOR_TIME},v1={VECTOR_HEX}"
    assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME) is True


def test_new_secrets_are_prefixed_long_and_distinct() -> None:
    made = {signing.new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith("whsec_")
        assert len(secret) >= 6 + 40  # 32 random bytes, url-safe base64
    assert signing.SIGNATURE_HEADER == "Calltrack-Signature"


@pytest.mark.parametrize(
    ("secret", "body", "stamp"),
    [
        pytest.param("whsec_other_secret", VECTOR_BODY, VECTOR_TIME, id="wrong-secret"),
        pytest.param(VECTOR_SECRET, VECTOR_BODY + b" ", VECTOR_TIME, id="body-appended"),
        pytest.param(
            VECTOR_SECRET, VECTOR_BODY.replace(b"evt_test", b"evt_tesT"), VECTOR_TIME, id="body"
        ),
        pytest.param(VECTOR_SECRET, b"", VECTOR_TIME, id="empty-body"),
        pytest.param(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIME + 1, id="timestamp"),
        pytest.param(VECTOR_SECRET, VECTOR_BODY, VECTOR_TIME - 1, id="timestamp-earlier"),
    ],
)
def test_verify_refuses_a_tampered_secret_body_or_timestamp(
    secret: str, body: bytes, stamp: int
) -> None:
    # The header always carries the vector's digest; one input differs from what it signed.
    value = f"t={stamp},v1={VECTOR_HEX}"
    assert signing.verify(secret, value, body, now=VECTOR_TIME) is False


def test_verify_honours_the_tolerance_both_ways() -> None:
    value = signing.header(VECTOR_SECRET, VECTOR_TIME, VECTOR_BODY)
    tolerance = signing.TOLERANCE_SECONDS
    assert tolerance == 300
    for now in (VECTOR_TIME + tolerance, VECTOR_TIME - tolerance):
        assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=now) is True
    for now in (VECTOR_TIME + tolerance + 1, VECTOR_TIME - tolerance - 1, VECTOR_TIME + 86400):
        assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=now) is False
    # A receiver's own tolerance.
    assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME + 10, tolerance=10)
    assert (
        signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME + 11, tolerance=10)
        is False
    )


def test_a_stale_header_is_refused_even_with_a_correct_digest() -> None:
    old = VECTOR_TIME - 3600
    value = signing.header(VECTOR_SECRET, old, VECTOR_BODY)
    # The digest itself is right for that time...
    assert value.endswith(signing.digest(VECTOR_SECRET, old, VECTOR_BODY))
    # ...but an hour later it is a replay.
    assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME) is False


def test_several_v1_values_pass_when_one_matches() -> None:
    old_secret, new_secret = "whsec_old_one", "whsec_new_one"
    old = signing.digest(old_secret, VECTOR_TIME, VECTOR_BODY)
    new = signing.digest(new_secret, VECTOR_TIME, VECTOR_BODY)
    value = f"t={VECTOR_TIME},v1={old},v1={new}"
    assert signing.verify(old_secret, value, VECTOR_BODY, now=VECTOR_TIME) is True
    assert signing.verify(new_secret, value, VECTOR_BODY, now=VECTOR_TIME) is True
    assert signing.verify("whsec_third", value, VECTOR_BODY, now=VECTOR_TIME) is False
    # Garbage next to a good one does not spoil it, in any position.
    assert signing.verify(
        new_secret, f"v1={'0' * 64},t={VECTOR_TIME},v1={new},v1=zz", VECTOR_BODY, now=VECTOR_TIME
    )


def test_only_the_v1_scheme_counts() -> None:
    good = signing.digest(VECTOR_SECRET, VECTOR_TIME, VECTOR_BODY)
    for scheme in ("v0", "v2", "V1", "sig"):
        value = f"t={VECTOR_TIME},{scheme}={good}"
        assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME) is False


@pytest.mark.parametrize(
    "value",
    [
        "",
        ",",
        ",,,",
        "garbage",
        "t",
        "t=",
        "v1=",
        "t=,v1=",
        f"v1={VECTOR_HEX}",  # no timestamp
        f"t={VECTOR_TIME}",  # no signature
        f"t={VECTOR_TIME},v1=",
        f"t={VECTOR_TIME},v1",
        f"t=abc,v1={VECTOR_HEX}",
        f"t=1.7956944e9,v1={VECTOR_HEX}",
        f"t={VECTOR_TIME}.0,v1={VECTOR_HEX}",
        f"t=0x{VECTOR_TIME:x},v1={VECTOR_HEX}",
        f"t={'9' * 5000},v1={VECTOR_HEX}",  # beyond int()'s digit limit
        f"t={VECTOR_TIME},v1={VECTOR_HEX[:-1]}",  # one hex digit short
        f"t={VECTOR_TIME},v1={VECTOR_HEX.upper()}",
        f"t={VECTOR_TIME};v1={VECTOR_HEX}",
        f"t={VECTOR_TIME} v1={VECTOR_HEX}",
        f"{VECTOR_TIME},{VECTOR_HEX}",
        "=====",
        "t=\x00,v1=\x00",
    ],
)
def test_malformed_headers_are_refused_without_exceptions(value: str) -> None:
    assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME) is False


@pytest.mark.parametrize(
    "candidate",
    [
        pytest.param("é", id="e-acute"),
        pytest.param(VECTOR_HEX[:-1] + "é", id="hex-then-e-acute"),
        pytest.param("ä" * 64, id="64-a-umlaut"),
        pytest.param("\u0663" * 64, id="64-arabic-indic-three"),
    ],
)
def test_a_non_ascii_signature_is_refused_without_exceptions(candidate: str) -> None:
    # BUG (app/services/signing.py, verify(), the hmac.compare_digest call): a header like
    # "t=<now>,v1=é" raises TypeError ("comparing strings with non-ASCII characters is not
    # supported") instead of returning False. A receiver using verify() on an attacker's
    # header gets a 500, not a refusal.
    value = f"t={VECTOR_TIME},v1={candidate}"
    assert signing.verify(VECTOR_SECRET, value, VECTOR_BODY, now=VECTOR_TIME) is False


# --- dispatcher.backoff() and retry_after_seconds() -----------------------------------------


def test_backoff_doubles_from_the_base() -> None:
    delays = [dispatcher.backoff(n, base=30.0, cap=3600.0, rand=0.5) for n in range(1, 8)]
    assert delays == [30.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0]
    # Attempt 0 (or less) is treated as the first.
    assert dispatcher.backoff(0, base=30.0, cap=3600.0, rand=0.5) == 30.0
    assert dispatcher.backoff(1, base=7.0, cap=3600.0, rand=0.5) == 7.0


def test_backoff_is_capped() -> None:
    assert dispatcher.backoff(8, base=30.0, cap=3600.0, rand=0.5) == 3600.0
    assert dispatcher.backoff(30, base=30.0, cap=3600.0, rand=0.5) == 3600.0
    assert dispatcher.backoff(100, base=30.0, cap=3600.0, rand=0.5) == 3600.0
    assert dispatcher.backoff(3, base=30.0, cap=100.0, rand=0.5) == 100.0
    assert dispatcher.backoff(5, base=0.0, cap=3600.0, rand=0.9) == 0.0


@pytest.mark.parametrize("attempt", [1, 2, 5, 30])
def test_backoff_jitter_stays_within_20_percent(attempt: int) -> None:
    middle = min(30.0 * 2 ** (attempt - 1), 3600.0)
    assert dispatcher.backoff(attempt, base=30.0, cap=3600.0, rand=0.0) == pytest.approx(
        0.8 * middle
    )
    assert dispatcher.backoff(attempt, base=30.0, cap=3600.0, rand=1.0) == pytest.approx(
        1.2 * middle
    )
    for step in range(101):
        rand = step / 100
        delay = dispatcher.backoff(attempt, base=30.0, cap=3600.0, rand=rand)
        assert 0.8 * middle - 1e-9 <= delay <= 1.2 * middle + 1e-9
        assert delay == pytest.approx(middle * (0.8 + 0.4 * rand))


def test_retry_after_is_a_floor_capped_at_the_cap() -> None:
    # Longer than the backoff: honoured.
    assert dispatcher.backoff(1, base=30.0, cap=3600.0, rand=0.5, retry_after=600.0) == 600.0
    # Shorter than the backoff: the backoff stands.
    assert dispatcher.backoff(3, base=30.0, cap=3600.0, rand=0.5, retry_after=10.0) == 120.0
    assert dispatcher.backoff(1, base=30.0, cap=3600.0, rand=0.5, retry_after=0.0) == 30.0
    # Beyond the cap: the cap.
    assert dispatcher.backoff(1, base=30.0, cap=3600.0, rand=0.5, retry_after=86400.0) == 3600.0
    assert (
        dispatcher.backoff(1, base=30.0, cap=3600.0, rand=0.5, retry_after=float("inf")) == 3600.0
    )
    # None means no header.
    assert dispatcher.backoff(2, base=30.0, cap=3600.0, rand=0.5, retry_after=None) == 60.0


def test_retry_after_seconds_reads_delta_seconds() -> None:
    assert dispatcher.retry_after_seconds("120", NOW) == 120.0
    assert dispatcher.retry_after_seconds(" 7 ", NOW) == 7.0
    assert dispatcher.retry_after_seconds("0", NOW) == 0.0


def test_retry_after_seconds_reads_an_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert later.endswith("GMT")
    assert dispatcher.retry_after_seconds(later, NOW) == 90.0
    assert dispatcher.retry_after_seconds("Thu, 26 Nov 2026 12:05:00 GMT", NOW) == 300.0
    # A date in the past means now.
    assert dispatcher.retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "1.5", "-5", "+5", "1e3", "Thursday", "12 seconds"]
)
def test_retry_after_seconds_ignores_garbage(value: str | None) -> None:
    assert dispatcher.retry_after_seconds(value, NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("1\u00b2", id="one-superscript-two"),
        pytest.param("\u2460", id="circled-one"),
    ],
)
def test_retry_after_seconds_ignores_digit_like_characters(value: str) -> None:
    # BUG (app/services/dispatcher.py, retry_after_seconds(): `value.strip().isdigit()` then
    # `float(...)`): str.isdigit() is true for "²" (U+00B2) and "①", which float() refuses, so
    # a receiver answering `Retry-After: \xb2` (decoded as latin-1 by httpx) raises ValueError
    # out of Dispatcher._send(); the outcome is never stored and the delivery is re-sent each
    # time its claim lapses, with no attempt counted. Expected: None, like any garbage.
    assert dispatcher.retry_after_seconds(value, NOW) is None


# --- delivery_requests.webhook() ------------------------------------------------------------


def test_a_webhook_request_carries_the_event_headers_and_a_valid_signature() -> None:
    payload = json.dumps({"id": "evt_abc", "type": "call.completed", "data": {"id": 7}})
    out = delivery_requests.webhook(
        url="https://crm.example/hooks",
        secret=VECTOR_SECRET,
        payload=payload,
        event_id="evt_abc",
        kind="call.completed",
        attempt=3,
        now=NOW,
    )
    assert out.url == "https://crm.example/hooks"
    assert out.body == payload.encode()
    assert out.secret_params == {}
    headers = out.headers
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"].startswith("calltrack-webhooks/")
    assert headers["Calltrack-Event"] == "call.completed"
    assert headers["Calltrack-Event-Id"] == "evt_abc"
    assert headers["Calltrack-Attempt"] == "3"
    signature = headers["Calltrack-Signature"]
    stamp = int(NOW.timestamp())
    assert stamp == VECTOR_TIME
    # Checked as a receiver would, with hmac directly, and through verify().
    expected = hmac.new(
        VECTOR_SECRET.encode(), f"{stamp}.".encode() + out.body, hashlib.sha256
    ).hexdigest()
    assert signature == f"t={stamp},v1={expected}"
    assert signing.verify(VECTOR_SECRET, signature, out.body, now=stamp) is True
    assert signing.verify("whsec_someone_else", signature, out.body, now=stamp) is False
    assert signing.verify(VECTOR_SECRET, signature, out.body + b"x", now=stamp) is False


def test_a_webhook_body_is_the_frozen_payload_byte_for_byte() -> None:
    payload = '{"data":{"name":"Zoë"},"id":"evt_u"}'  # non-ASCII, key order kept
    out = delivery_requests.webhook(
        url="https://crm.example/hooks",
        secret=VECTOR_SECRET,
        payload=payload,
        event_id="evt_u",
        kind="session.created",
        attempt=1,
        now=NOW + timedelta(seconds=0.9),
    )
    assert out.body == payload.encode("utf-8")
    assert out.headers["Calltrack-Event"] == "session.created"
    assert out.headers["Calltrack-Attempt"] == "1"
    # The timestamp is whole seconds; the signature covers the exact bytes sent.
    assert out.headers["Calltrack-Signature"].startswith(f"t={VECTOR_TIME},v1=")
    assert signing.verify(
        VECTOR_SECRET, out.headers["Calltrack-Signature"], out.body, now=VECTOR_TIME
    )


# --- delivery_requests.ga4_body() and ga4() -------------------------------------------------


def call_payload(**data: Any) -> str:
    """A call.completed payload as the dispatcher freezes it."""
    fields: dict[str, Any] = {
        "id": 7,
        "started_at": "2026-11-26T11:00:00Z",
        "source": "google",
        "medium": "cpc",
        "campaign": "spring",
        "talk_seconds": 42,
        "first_time": True,
        "status": "completed",
        "attribution": "session",
        "context": {"utm_source": "google", "ga_client_id": "1234567890.1700000000"},
    }
    fields.update(data)
    body = {
        "id": "evt_call",
        "type": "call.completed",
        "created_at": "2026-11-26T11:05:00Z",
        "data": fields,
    }
    return json.dumps(body)


STARTED_MICROS = (VECTOR_TIME - 3600) * 1_000_000  # 2026-11-26T11:00:00Z


def test_ga4_body_from_a_call_completed_payload() -> None:
    body = delivery_requests.ga4_body(call_payload())
    assert body == {
        "client_id": "1234567890.1700000000",
        "timestamp_micros": STARTED_MICROS,
        "events": [
            {
                "name": "phone_call",
                "params": {
                    "source": "google",
                    "medium": "cpc",
                    "campaign": "spring",
                    "duration": 42,
                    "first_time": 1,
                    "call_status": "completed",
                    "attribution": "session",
                    "engagement_time_msec": 1,
                },
            }
        ],
    }


def test_ga4_body_keeps_microseconds_and_reads_offsets() -> None:
    body = delivery_requests.ga4_body(call_payload(started_at="2026-11-26T11:00:00.250001Z"))
    assert body["timestamp_micros"] == STARTED_MICROS + 250001
    body = delivery_requests.ga4_body(call_payload(started_at="2026-11-26T13:00:00+02:00"))
    assert body["timestamp_micros"] == STARTED_MICROS


def test_ga4_body_writes_none_for_nulls_and_zero_for_missing_numbers() -> None:
    body = delivery_requests.ga4_body(
        call_payload(
            source=None,
            medium=None,
            campaign=None,
            talk_seconds=None,
            first_time=None,
            attribution=None,
        )
    )
    params = body["events"][0]["params"]
    assert params["source"] == "(none)"
    assert params["medium"] == "(none)"
    assert params["campaign"] == "(none)"
    assert params["attribution"] == "(none)"
    assert params["duration"] == 0
    assert params["first_time"] == 0
    assert (
        delivery_requests.ga4_body(call_payload(first_time=False))["events"][0]["params"][
            "first_time"
        ]
        == 0
    )


def test_ga4_body_caps_values_at_100_characters() -> None:
    long_campaign = "c" * 99 + "XYZ" + "d" * 50
    body = delivery_requests.ga4_body(call_payload(campaign=long_campaign, source="s" * 100))
    params = body["events"][0]["params"]
    assert params["campaign"] == "c" * 99 + "X"
    assert len(params["campaign"]) == 100
    assert params["source"] == "s" * 100


@pytest.mark.parametrize(
    "context",
    [
        None,
        {},
        {"utm_source": "google"},
        {"ga_client_id": None},
        {"ga_client_id": ""},
    ],
)
def test_ga4_body_without_a_client_id_is_undeliverable(context: Any) -> None:
    with pytest.raises(delivery_requests.Undeliverable, match="GA client id"):
        delivery_requests.ga4_body(call_payload(context=context))


def ga4_request(now: datetime, payload: str | None = None) -> delivery_requests.Outgoing:
    """A Measurement Protocol request for the standard call, made at `now`."""
    return delivery_requests.ga4(
        endpoint="https://www.google-analytics.com/mp/collect",
        measurement_id="G-TEST1234",
        api_secret="ga4-secret-value-9f8e",
        payload=payload or call_payload(),
        now=now,
    )


def test_ga4_keeps_its_credentials_out_of_the_url() -> None:
    out = ga4_request(NOW)
    assert out.url == "https://www.google-analytics.com/mp/collect"
    assert "G-TEST1234" not in out.url
    assert "ga4-secret-value-9f8e" not in out.url
    assert "?" not in out.url
    assert out.secret_params == {
        "measurement_id": "G-TEST1234",
        "api_secret": "ga4-secret-value-9f8e",
    }
    assert "ga4-secret-value-9f8e" not in json.dumps(out.headers)
    assert b"ga4-secret-value-9f8e" not in out.body
    assert out.headers["Content-Type"] == "application/json"
    assert json.loads(out.body) == delivery_requests.ga4_body(call_payload())


def test_ga4_refuses_a_call_older_than_72_hours() -> None:
    started = NOW - timedelta(hours=1)  # call_payload()'s started_at
    # Exactly 72 hours old is still accepted; a second more is not.
    assert json.loads(ga4_request(started + timedelta(hours=72)).body)["timestamp_micros"] == (
        STARTED_MICROS
    )
    with pytest.raises(delivery_requests.Undeliverable, match="72 hours"):
        ga4_request(started + timedelta(hours=72, seconds=1))
    with pytest.raises(delivery_requests.Undeliverable):
        ga4_request(started + timedelta(days=30))


def test_ga4_without_a_client_id_is_undeliverable() -> None:
    with pytest.raises(delivery_requests.Undeliverable):
        ga4_request(NOW, call_payload(context={"utm_source": "google"}))
