"""Service configuration, read from CALLTRACK_* environment variables."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

import phonenumbers
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")
_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# Values people paste from examples; refusing them keeps "no default secrets" honest.
_PLACEHOLDER_TOKENS = {"changeme", "change-me", "secret", "password", "admin", "token"}


def parse_rate(value: str) -> tuple[int, int] | None:
    """Parse '60/minute' into (60, 60); 'off' into None."""
    if value.strip().lower() == "off":
        return None
    match = _RATE_RE.match(value.lower())
    if not match or int(match.group(1)) < 1:
        raise ValueError("expected '<count>/<second|minute|hour|day>' or 'off'")
    return int(match.group(1)), _PERIODS[match.group(2)]


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All settings of the service; one instance per app."""

    model_config = SettingsConfigDict(env_prefix="CALLTRACK_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./calltrack.db"
    admin_token: SecretStr | None = None
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    public_rate_limit: str = "60/minute"
    redis_url: str | None = None
    default_region: str = "US"
    ip_hash_key: SecretStr | None = None
    pool_cache_seconds: float = Field(default=5.0, ge=0)
    log_level: str = "INFO"
    db_pool_size: int = Field(default=10, ge=1)
    forwarded_allow_ips: str = "127.0.0.1"

    # The voice platform. Without a Cloudonix key the built-in emulator plays Cloudonix.
    provider: Literal["emulator", "cloudonix"] | None = None
    cloudonix_base_url: str = "https://api.cloudonix.io"
    cloudonix_domain: str | None = None
    cloudonix_api_key: SecretStr | None = None
    cloudonix_rate_requests: int = Field(default=10, ge=1)
    cloudonix_rate_period: float = Field(default=10.0, gt=0)
    cloudonix_timeout: float = Field(default=10.0, gt=0)
    cloudonix_max_attempts: int = Field(default=4, ge=1, le=20)
    webhook_token: SecretStr | None = None
    public_url: str | None = None
    default_destination: str | None = None
    unknown_number_message: str = "Sorry, this number is not in service. Goodbye."
    voice_db_timeout: float = Field(default=1.5, gt=0)
    routing_refresh_seconds: float = Field(default=300.0, ge=0)
    emulator_url: str | None = None
    # The key the emulator's REST API accepts: random per process unless set, which a
    # `calltrack worker` next to `calltrack serve` needs.
    emulator_api_key: SecretStr | None = None
    emulator_speed: float = Field(default=1.0, gt=0)

    # Click-to-callback.
    callback_worker: bool = True
    callback_countries: Annotated[list[str], NoDecode] = Field(default_factory=list)
    callback_rate_limit: str = "10/hour"
    callback_number_limit: int = Field(default=3, ge=1, le=100)
    callback_max_attempts: int = Field(default=3, ge=1, le=20)
    callback_max_age_seconds: int = Field(default=4 * 3600, ge=60, le=7 * 86400)
    callback_retry_seconds: float = Field(default=300.0, ge=0)
    callback_retry_max_seconds: float = Field(default=3600.0, ge=0)
    callback_agent_ring_seconds: int = Field(default=20, ge=5, le=120)
    callback_customer_ring_seconds: int = Field(default=30, ge=5, le=120)
    callback_time_limit_seconds: int = Field(default=3600, ge=60, le=4 * 3600)
    callback_claim_seconds: float = Field(default=90.0, gt=0)
    callback_check_seconds: float = Field(default=60.0, gt=0)
    callback_orphan_seconds: float = Field(default=30.0, gt=0)
    callback_poll_seconds: float = Field(default=1.0, gt=0)
    callback_concurrency: int = Field(default=4, ge=1, le=64)
    callback_drain_seconds: float = Field(default=20.0, ge=0)

    # The Google Ads offline conversions export (GET /v1/exports/google-ads-conversions.csv).
    google_ads_min_talk_seconds: int = Field(default=60, ge=0, le=86400)
    google_ads_conversion_name: str = Field(default="Phone call", min_length=1, max_length=100)
    google_ads_conversion_value: Decimal = Field(default=Decimal(0), ge=0, max_digits=18)
    google_ads_currency: str = Field(default="USD", pattern=r"^[A-Za-z]{3}$")

    # Web-To-Call: browser calls through short-lived platform subscribers.
    web_to_call_ttl_seconds: int = Field(default=600, ge=60, le=86400)
    web_to_call_session_limit: int = Field(default=5, ge=1, le=100)
    web_to_call_keeper_seconds: float = Field(default=15.0, gt=0)
    cloudonix_websocket_url: str | None = Field(default=None, pattern=r"^wss?://")

    # Outbound webhooks and GA4 events, delivered from the outbox (services/dispatcher.py).
    outbox_worker: bool = True
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_concurrency: int = Field(default=8, ge=1, le=64)
    outbox_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    outbox_retry_seconds: float = Field(default=30.0, ge=0)
    outbox_retry_max_seconds: float = Field(default=3600.0, ge=0)
    outbox_max_attempts: int = Field(default=30, ge=1, le=100)
    outbox_settle_seconds: float = Field(default=15.0, ge=0, le=600)
    outbox_retention_days: int = Field(default=30, ge=1, le=3650)
    webhooks_allow_http: bool = False
    ga4_measurement_id: str | None = Field(default=None, pattern=r"^G-[A-Z0-9]{4,20}$")
    ga4_api_secret: SecretStr | None = None
    ga4_endpoint: str = "https://www.google-analytics.com/mp/collect"

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("callback_countries", mode="before")
    @classmethod
    def _countries_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("callback_countries")
    @classmethod
    def _countries(cls, value: list[str]) -> list[str]:
        regions = [item.upper() for item in value]
        unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
        if unknown:
            raise ValueError(f"unknown regions {', '.join(unknown)}")
        return regions

    @field_validator("google_ads_currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        return value.upper()

    @field_validator("public_rate_limit", "callback_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r}")
        return region

    @field_validator("admin_token", "webhook_token")
    @classmethod
    def _token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        raw = value.get_secret_value()
        if raw.lower() in _PLACEHOLDER_TOKENS or len(raw) < 16:
            name = str(info.field_name).replace("_", " ")
            raise ValueError(f"{name} must be a random string of at least 16 characters")
        return value

    @field_validator("default_destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            raise ValueError("default destination must be a valid number in E.164 (+...)")
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    @model_validator(mode="after")
    def _cloudonix_complete(self) -> Settings:
        if self.voice_provider == "cloudonix":
            missing = [
                name
                for name, value in (
                    ("CALLTRACK_CLOUDONIX_API_KEY", self.cloudonix_api_key),
                    ("CALLTRACK_CLOUDONIX_DOMAIN", self.cloudonix_domain),
                    ("CALLTRACK_WEBHOOK_TOKEN", self.webhook_token),
                )
                if value is None
            ]
            if missing:
                raise ValueError(f"the cloudonix provider needs {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _ga4_complete(self) -> Settings:
        if (self.ga4_measurement_id is None) != (self.ga4_api_secret is None):
            raise ValueError(
                "GA4 needs both CALLTRACK_GA4_MEASUREMENT_ID and CALLTRACK_GA4_API_SECRET"
            )
        if not self.ga4_endpoint.startswith(("https://", "http://")):
            raise ValueError("CALLTRACK_GA4_ENDPOINT must be an http(s) URL")
        return self

    @property
    def sip_websocket_url(self) -> str | None:
        """Where browsers register for Web-To-Call: Cloudonix's WSS, or the emulator's."""
        if self.voice_provider == "cloudonix":
            return self.cloudonix_websocket_url
        base = self.service_url
        return "ws" + base.removeprefix("http") + "/emulator/sip"

    @property
    def ga4_enabled(self) -> bool:
        """Whether attributed calls are sent to GA4 as phone_call events."""
        return self.ga4_measurement_id is not None and self.ga4_api_secret is not None

    @property
    def voice_provider(self) -> Literal["emulator", "cloudonix"]:
        """The voice platform in use: Cloudonix when a key is set, else the emulator."""
        if self.provider is not None:
            return self.provider
        return "cloudonix" if self.cloudonix_api_key is not None else "emulator"

    @property
    def voice_domain(self) -> str:
        """The Cloudonix domain the service answers for."""
        return self.cloudonix_domain or "calltrack.emulator"

    @property
    def rate_limit(self) -> tuple[int, int] | None:
        """The public rate limit as (requests, period seconds), or None when off."""
        return parse_rate(self.public_rate_limit)

    @property
    def service_url(self) -> str:
        """This service's own base URL with the emulator, from where the emulator is."""
        emulator_url = self.emulator_url or "http://127.0.0.1:8000/emulator"
        return emulator_url.removesuffix("/").removesuffix("/emulator")

    @property
    def callback_webhook_base(self) -> str | None:
        """Where the voice platform reaches our webhooks; None if it cannot be known."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return self.service_url if self.voice_provider == "emulator" else None

    @property
    def callback_rate(self) -> tuple[int, int] | None:
        """The per-visitor limit on callback requests, or None when off."""
        return parse_rate(self.callback_rate_limit)

    @property
    def callback_regions(self) -> list[str]:
        """Countries callbacks may call unless a pool says otherwise: the default region."""
        return self.callback_countries or [self.default_region]

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
