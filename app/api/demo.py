"""The demo site: a small business page that uses `dni.js` as a customer's would, with a
panel that places an emulated call. Mounted only while the emulator plays Cloudonix."""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from app import assets
from app.api.deps import NowDep, SessionDep, StateDep
from app.errors import Forbidden, NotFound
from app.middleware import local_or_admin
from app.services import demo

router = APIRouter(prefix="/demo", tags=["demo"], include_in_schema=False)

# The SPA's routes: each serves the same page, which renders the route itself.
ROUTES = ("", "/services")
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}


@cache
def _page() -> assets.Asset:
    # The page pins the snippet's current version, as a customer's site would.
    template = assets.asset("demo.html").body
    version = assets.asset("dni.js").version.encode()
    return assets.make_asset("demo.html", template.replace(b"{{dni_version}}", version))


async def _local_or_admin(request: Request, state: StateDep) -> None:
    token = state.settings.admin_token
    if not local_or_admin(request.scope, token.get_secret_value().encode() if token else None):
        raise Forbidden(
            "the demo panel answers this machine, or the admin token", field="authorization"
        )


async def page(
    request: Request, db: SessionDep, state: StateDep, now: NowDep, tasks: BackgroundTasks
) -> Response:
    """The demo page; the first visit creates the demo pool."""
    if await demo.ensure_pool(db, region=state.settings.default_region, now=now):
        # After the commit: calls to the new numbers must find their pool.
        tasks.add_task(state.desk.routes_changed)
    return assets.serve(request, _page(), cache_control="no-cache", headers=_PAGE_HEADERS)


for _route in ROUTES:
    router.add_api_route(_route, page, methods=["GET"], name=f"demo_page{_route.replace('/', '_')}")


@router.get("/assets/{name}")
async def demo_asset(
    name: Annotated[str, Path(pattern=r"^demo\.(js|css)$")], request: Request
) -> Response:
    """The demo's script and stylesheet."""
    return assets.serve(request, assets.asset(name), cache_control="no-cache")


@router.get("/calls/{token}", dependencies=[Depends(_local_or_admin)])
async def demo_call(
    token: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")], db: SessionDep
) -> JSONResponse:
    """How an emulated call was credited: method, source, medium, campaign."""
    found = await demo.attributed_call(db, token)
    if found is None:
        raise NotFound("no call with this token was recorded (yet)", field="token")
    return JSONResponse(found, headers={"Cache-Control": "no-store"})
