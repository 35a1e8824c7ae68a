"""The ops dashboard at /dashboard: server-rendered HTML and SVG behind the admin token."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app import assets
from app.api.deps import NowDep, SessionDep, StateDep
from app.services import dashboard, dashboard_auth, dashboard_page, dashboard_views, reports
from app.settings import Settings

router = APIRouter(prefix="/dashboard", tags=["dashboard"], include_in_schema=False)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
MAX_FORM_BYTES = 4096


def _stylesheet() -> str:
    return "/dashboard/assets/dashboard.css?v=" + assets.asset("dashboard.css").version


def _html(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**HEADERS, **(headers or {})})


def _admin_token(settings: Settings) -> str | None:
    return settings.admin_token.get_secret_value() if settings.admin_token else None


def _secure(request: Request, settings: Settings) -> bool:
    configured = settings.public_url or settings.service_url
    return request.url.scheme == "https" or configured.startswith("https")


async def _form_token(request: Request) -> str:
    # Read at most a few KB: the form holds one field, and nothing here may be made to
    # buffer an arbitrary body before the token is even checked.
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return ""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return ""
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
    return (fields.get("token") or [""])[0]


@router.get("")
async def dashboard_home(
    request: Request,
    db: SessionDep,
    state: StateDep,
    now: NowDep,
    days: Annotated[str, Query()] = "30",
    tz: Annotated[str, Query()] = "UTC",
    currency: Annotated[str | None, Query()] = None,
) -> Response:
    """The dashboard, or the login form without a valid sign-in."""
    token = _admin_token(state.settings)
    if token is None:
        return _html(dashboard_views.disabled(stylesheet=_stylesheet()), 503)
    cookie = request.cookies.get(dashboard_auth.COOKIE)
    if not dashboard_auth.valid(cookie, token, now):
        message = "Your sign-in has expired; sign in again." if cookie else None
        response = _html(dashboard_views.login(stylesheet=_stylesheet(), message=message))
        if cookie:
            response.delete_cookie(dashboard_auth.COOKIE, path="/dashboard")
        return response
    # Validated after the sign-in (hence plain strings): a stranger gets the form, not 422s.
    span = dashboard.window(days=days, tz=tz, now=now)
    wanted = dashboard.currency(currency)
    figures = await dashboard.gather(db, span=span, wanted_currency=wanted, now=now)
    generated = now.astimezone(reports.zone(span.tz))
    return _html(dashboard_page.page(figures, stylesheet=_stylesheet(), generated=generated))


@router.post("/login")
async def dashboard_login(request: Request, state: StateDep, now: NowDep) -> Response:
    """Check the admin token from the form and sign the browser in with a cookie."""
    token = _admin_token(state.settings)
    if token is None:
        return _html(dashboard_views.disabled(stylesheet=_stylesheet()), 503)
    peer = request.client.host if request.client else "unknown"
    decision = await state.limiter.hit(f"dashboard-login:{peer}")
    if not decision.allowed:
        page = dashboard_views.login(
            stylesheet=_stylesheet(), message="Too many attempts; wait a minute and try again."
        )
        return _html(page, 429, {"Retry-After": str(decision.retry_after)})
    if not dashboard_auth.token_matches(await _form_token(request), token):
        page = dashboard_views.login(stylesheet=_stylesheet(), message="That token is not right.")
        return _html(page, 401)
    response = RedirectResponse("/dashboard", status_code=303, headers=HEADERS)
    response.set_cookie(
        dashboard_auth.COOKIE,
        dashboard_auth.issue(token, now),
        max_age=dashboard_auth.LIFETIME_SECONDS,
        path="/dashboard",
        secure=_secure(request, state.settings),
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def dashboard_logout(request: Request, state: StateDep) -> Response:
    """Forget the sign-in cookie and go back to the login form."""
    response = RedirectResponse("/dashboard", status_code=303, headers=HEADERS)
    response.delete_cookie(
        dashboard_auth.COOKIE,
        path="/dashboard",
        secure=_secure(request, state.settings),
        httponly=True,
        samesite="strict",
    )
    return response


@router.get("/assets/dashboard.css")
async def dashboard_stylesheet(request: Request) -> Response:
    """The dashboard's stylesheet; kept for long under the version the page links."""
    item = assets.asset("dashboard.css")
    versioned = request.query_params.get("v") == item.version
    return assets.serve(request, item, cache_control=assets.LONG_CACHE if versioned else "no-cache")
