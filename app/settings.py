"""Service configuration, read from CALLTRACK_* environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated

import phonenumbers
from pydantic import Field, SecretStr, field_validator
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

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _cors_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("public_rate_limit")
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

    @field_validator("admin_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or value.get_secret_value() == "":
            return None
        raw = value.get_secret_value()
        if raw.lower() in _PLACEHOLDER_TOKENS or len(raw) < 16:
            raise ValueError("admin token must be a random string of at least 16 characters")
        return value

    @property
    def rate_limit(self) -> tuple[int, int] | None:
        """The public rate limit as (requests, period seconds), or None when off."""
        return parse_rate(self.public_rate_limit)

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
