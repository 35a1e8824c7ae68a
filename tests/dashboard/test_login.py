"""Signing in to /dashboard: the form, the cookie and its limits, and the page's headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.main import create_app
from app.services import dashboard_auth
from tests.conftest import make_settings
from tests.dashboard.page import sign_in
from tests.support import ADMIN, ADMIN_TOKEN, FakeClock

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
FORM = '<form method="post" action="/dashboard/login">'
PAGE = 'id="chart-sources"'
OTHER_TOKEN = "another-admin-token-8d1c4e2a"


@asynccontextmanager
async def served(database_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built with these settings."""
    app = create_app(make_settings(database_url, **overrides), clock=FakeClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://calltrack.test") as c:
            yield c


def assert_page_headers(response: httpx.Response) -> None:
    """The headers every dashboard page carries."""
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


def cookie_header(response: httpx.Response) -> str:
    """The Set-Cookie of the dashboard's cookie."""
    [found] = [
        c for c in response.headers.get_list("set-cookie") if c.startswith("calltrack_dash=")
    ]
    return found


async def test_without_a_cookie_the_login_form(client: httpx.AsyncClient) -> None:
    answer = await client.get("/dashboard")
    assert answer.status_code == 200
    assert_page_headers(answer)
    assert FORM in answer.text
    assert 'type="password"' in answer.text
    assert PAGE not in answer.text
    # The ops API's bearer token is no sign-in here: the page is for browsers.
    with_bearer = await client.get("/dashboard", headers=ADMIN)
    assert FORM in with_bearer.text
    assert PAGE not in with_bearer.text


async def test_the_right_token_signs_in_with_a_strict_cookie(client: httpx.AsyncClient) -> None:
    answer = await sign_in(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    assert answer.headers["cache-control"] == "no-store"
    cookie = cookie_header(answer)
    flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path", "max-age"} <= set(flags)
    assert flags["samesite"].lower() == "samesite=strict"
    assert flags["path"] == "Path=/dashboard"
    assert flags["max-age"] == "Max-Age=28800"
    assert "secure" not in flags  # served over plain http
    assert ADMIN_TOKEN not in cookie
    page = await client.get("/dashboard")
    assert page.status_code == 200
    assert_page_headers(page)
    assert PAGE in page.text
    assert FORM not in page.text


async def test_the_cookie_is_secure_when_the_service_is_https(database_url: str) -> None:
    async with served(database_url, public_url="https://calltrack.example") as client:
        answer = await sign_in(client)
        assert answer.status_code == 303
        assert "secure" in cookie_header(answer).lower().split("; ")


async def test_a_wrong_token_is_refused_and_not_echoed(client: httpx.AsyncClient) -> None:
    guess = "wrong-guess-<b>7f3a9c</b>"
    answer = await sign_in(client, guess)
    assert answer.status_code == 401
    assert_page_headers(answer)
    assert FORM in answer.text
    assert "not right" in answer.text
    assert "7f3a9c" not in answer.text
    assert "set-cookie" not in answer.headers
    assert PAGE not in (await client.get("/dashboard")).text
    for body, kind in (
        ("", "application/x-www-form-urlencoded"),
        (f'{{"token": "{ADMIN_TOKEN}"}}', "application/json"),
        ("token=" + "x" * 5000 + "&token=" + ADMIN_TOKEN, "application/x-www-form-urlencoded"),
    ):
        odd = await client.post("/dashboard/login", content=body, headers={"Content-Type": kind})
        assert odd.status_code == 401, body[:40]


async def test_a_cookie_signed_with_another_token_is_refused(client: httpx.AsyncClient) -> None:
    forged = dashboard_auth.issue(OTHER_TOKEN, FakeClock().now)
    answer = await client.get("/dashboard", headers={"Cookie": f"calltrack_dash={forged}"})
    assert answer.status_code == 200
    assert FORM in answer.text
    assert PAGE not in answer.text
    assert "expired" in answer.text
    assert 'calltrack_dash=""' in cookie_header(answer)  # and it is dropped
    for junk in ("", "x", "99999999999.", "1.2.3", ".abc", forged.split(".")[1]):
        refused = await client.get("/dashboard", headers={"Cookie": f"calltrack_dash={junk}"})
        assert PAGE not in refused.text, junk


async def test_changing_the_admin_token_signs_everyone_out(database_url: str) -> None:
    async with served(database_url) as first:
        assert (await sign_in(first)).status_code == 303
        cookie = first.cookies["calltrack_dash"]
    async with served(database_url, admin_token=OTHER_TOKEN) as second:
        answer = await second.get("/dashboard", headers={"Cookie": f"calltrack_dash={cookie}"})
        assert FORM in answer.text
        assert PAGE not in answer.text


async def test_the_cookie_expires_after_eight_hours(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    assert (await sign_in(client)).status_code == 303
    clock.advance(8 * 3600 - 1)
    assert PAGE in (await client.get("/dashboard")).text
    clock.advance(1)
    expired = await client.get("/dashboard")
    assert FORM in expired.text
    assert PAGE not in expired.text


async def test_logout_forgets_the_cookie(client: httpx.AsyncClient) -> None:
    assert (await sign_in(client)).status_code == 303
    answer = await client.post("/dashboard/logout")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/dashboard"
    assert "max-age=0" in cookie_header(answer).lower()
    again = await client.get("/dashboard")
    assert FORM in again.text
    assert PAGE not in again.text


async def test_without_an_admin_token_the_dashboard_is_disabled(database_url: str) -> None:
    async with served(database_url, admin_token=None) as client:
        page = await client.get("/dashboard")
        assert page.status_code == 503
        assert_page_headers(page)
        assert "disabled" in page.text
        assert "CALLTRACK_ADMIN_TOKEN" in page.text
        assert FORM not in page.text
        login = await sign_in(client)
        assert login.status_code == 503
        assert "set-cookie" not in login.headers


async def test_login_attempts_are_rate_limited(database_url: str) -> None:
    async with served(database_url, public_rate_limit="3/minute") as client:
        for _ in range(3):
            assert (await sign_in(client, "wrong-guess-0000000")).status_code == 401
        limited = await sign_in(client)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "set-cookie" not in limited.headers
        assert "Too many attempts" in limited.text


async def test_bad_window_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    # Before signing in, nothing but the form answers.
    stranger = await client.get("/dashboard", params={"days": "0"})
    assert stranger.status_code == 200
    assert FORM in stranger.text
    assert (await sign_in(client)).status_code == 303
    for params, field in (
        ({"days": "0"}, "query.days"),
        ({"days": "367"}, "query.days"),
        ({"days": "-3"}, "query.days"),
        ({"days": "seven"}, "query.days"),
        ({"tz": "Mars/Olympus_Mons"}, "query.tz"),
        ({"tz": "../../etc/passwd"}, "query.tz"),
        ({"tz": "A" * 300}, "query.tz"),
        ({"currency": "dollars"}, "query.currency"),
        ({"currency": "USD\n"}, "query.currency"),
        ({"days": "9" * 5000}, "query.days"),
    ):
        answer = await client.get("/dashboard", params=params)
        assert answer.status_code == 422, params
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["field"] == field, params
    for days in ("1", "366"):
        assert (await client.get("/dashboard", params={"days": days})).status_code == 200


async def test_the_stylesheet_is_served_by_version(client: httpx.AsyncClient) -> None:
    form = await client.get("/dashboard")
    href = form.text.split('<link rel="stylesheet" href="', 1)[1].split('"', 1)[0]
    assert href.startswith("/dashboard/assets/dashboard.css?v=")
    sheet = await client.get(href)
    assert sheet.status_code == 200
    assert sheet.headers["content-type"] == "text/css; charset=utf-8"
    assert "immutable" in sheet.headers["cache-control"]
    assert b"svg.chart" in sheet.content
    unversioned = await client.get("/dashboard/assets/dashboard.css")
    assert unversioned.headers["cache-control"] == "no-cache"
    assert (await client.get("/dashboard/assets/demo.css")).status_code == 404


def test_the_dashboard_is_not_in_the_openapi_contract(app: FastAPI) -> None:
    assert not [path for path in app.openapi()["paths"] if path.startswith("/dashboard")]
