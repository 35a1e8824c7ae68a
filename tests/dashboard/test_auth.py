"""The dashboard cookie's signature and expiry, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.services import dashboard_auth

TOKEN = "test-admin-token-5f2b9c1e7a"
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_a_cookie_holds_until_its_expiry_and_names_no_token() -> None:
    cookie = dashboard_auth.issue(TOKEN, NOW)
    expiry, signature = cookie.split(".")
    assert int(expiry) == int(NOW.timestamp()) + 8 * 3600
    assert len(signature) == 64
    assert TOKEN not in cookie
    assert dashboard_auth.valid(cookie, TOKEN, NOW)
    assert dashboard_auth.valid(cookie, TOKEN, NOW + timedelta(hours=8, seconds=-1))
    assert not dashboard_auth.valid(cookie, TOKEN, NOW + timedelta(hours=8))


def test_tampered_cookies_are_refused() -> None:
    cookie = dashboard_auth.issue(TOKEN, NOW)
    expiry, signature = cookie.split(".")
    later = int(expiry) + 3600
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    for forged in (
        f"{later}.{signature}",  # a longer life under the old signature
        f"{expiry}.{flipped}",
        f"{expiry}.{signature.upper()}",
        f"{expiry}.",
        f".{signature}",
        signature,
        f"\u0663\u0663\u0663.{signature}",  # digits, but not ASCII ones
        f"{'9' * 13}.{signature}",
        "",
    ):
        assert not dashboard_auth.valid(forged, TOKEN, NOW), forged
    assert not dashboard_auth.valid(None, TOKEN, NOW)
    assert not dashboard_auth.valid(cookie, "another-admin-token-8d1c4e2a", NOW)


def test_token_comparison() -> None:
    assert dashboard_auth.token_matches(TOKEN, TOKEN)
    assert not dashboard_auth.token_matches(TOKEN[:-1], TOKEN)
    assert not dashboard_auth.token_matches("", TOKEN)
    assert not dashboard_auth.token_matches("t\u00e9st", TOKEN)
