"""Settings refuse unsafe or malformed values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings, parse_rate


def test_no_admin_token_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLTRACK_ADMIN_TOKEN", raising=False)
    assert Settings().admin_token is None


@pytest.mark.parametrize("token", ["changeme", "secret", "short"])
def test_placeholder_or_short_admin_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValidationError):
        Settings(admin_token=token)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLTRACK_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("CALLTRACK_PUBLIC_RATE_LIMIT", "10/second")
    monkeypatch.setenv("CALLTRACK_DEFAULT_REGION", "gb")
    settings = Settings()
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.rate_limit == (10, 1)
    assert settings.default_region == "GB"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("60/minute", (60, 60)), ("5 / second", (5, 1)), ("1000/hour", (1000, 3600)), ("off", None)],
)
def test_rates_parse(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["60", "0/minute", "ten/minute", "5/week"])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_rate(text)
    with pytest.raises(ValidationError):
        Settings(public_rate_limit=text)


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(default_region="XX")


def test_without_a_cloudonix_key_the_emulator_plays_cloudonix() -> None:
    settings = Settings(_env_file=None)
    assert settings.voice_provider == "emulator"
    assert settings.voice_domain == "calltrack.emulator"


def test_cloudonix_needs_its_key_domain_and_webhook_token() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(cloudonix_api_key="XI" + "a" * 32)
    message = str(caught.value)
    assert "CALLTRACK_CLOUDONIX_DOMAIN" in message
    assert "CALLTRACK_WEBHOOK_TOKEN" in message
    complete = Settings(
        cloudonix_api_key="XI" + "a" * 32,
        cloudonix_domain="acme.cloudonix.net",
        webhook_token="w" * 24,
    )
    assert complete.voice_provider == "cloudonix"
    assert complete.voice_domain == "acme.cloudonix.net"
    with pytest.raises(ValidationError):
        Settings(provider="cloudonix")


@pytest.mark.parametrize("token", ["token", "password", "too-short"])
def test_placeholder_or_short_webhook_tokens_are_refused(token: str) -> None:
    with pytest.raises(ValidationError):
        Settings(webhook_token=token)


def test_default_destination_must_be_e164() -> None:
    assert Settings(default_destination="+1 212 555 0111").default_destination == "+12125550111"
    for bad in ("12125550111", "+1abc", "+1212555011199999"):
        with pytest.raises(ValidationError):
            Settings(default_destination=bad)
