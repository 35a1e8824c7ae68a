"""Fixtures: a fresh migrated database per test on every backend, the app and a client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.support import ADMIN, ADMIN_TOKEN, BACKENDS, WEBHOOK_TOKEN, FakeClock, Templates


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    """Migrated template databases, built once per run."""
    built = Templates(tmp_path_factory.mktemp("db"))
    yield built
    built.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend of this test run: sqlite or postgresql."""
    return str(request.param)


@pytest.fixture
def database_url(templates: Templates, backend: str) -> Iterator[str]:
    """A fresh database built by the migrations, dropped after the test."""
    url, handle = templates.fresh(backend)
    yield url
    templates.dispose(backend, handle)


@pytest.fixture
def clock() -> FakeClock:
    """The app's clock; tests move it to expire leases."""
    return FakeClock()


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Test settings: admin token set, no rate limit, no pool cache."""
    values: dict[str, object] = {
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "public_rate_limit": "off",
        "pool_cache_seconds": 0,
        "webhook_token": WEBHOOK_TOKEN,
        "routing_refresh_seconds": 0,
        # A loaded test machine must not turn into a simulated database outage; the
        # outage tests set their own short deadline.
        "voice_db_timeout": 15.0,
        # Tests that need the callback worker start it (or drive it) themselves.
        "callback_worker": False,
        # Likewise the webhook dispatcher: tests run it a round at a time on their clock.
        "outbox_worker": False,
        # And the Web-To-Call keeper: tests that need it call run_once() themselves.
        "web_to_call_keeper_seconds": 3600.0,
        "callback_rate_limit": "off",
    }
    values.update(overrides)
    return Settings.model_validate(values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings of the app under test."""
    return make_settings(database_url)


@pytest.fixture
async def app(settings: Settings, clock: FakeClock) -> AsyncIterator[FastAPI]:
    """The app with its lifespan running."""
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://calltrack.test") as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    """Headers of an ops API caller."""
    return dict(ADMIN)
