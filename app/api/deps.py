"""Dependencies of the routers, as Annotated aliases."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.errors import AdminDisabled, Unauthorized
from app.state import AppState

# Dependencies are `async def` even when they never await: FastAPI runs a plain `def`
# dependency in a worker thread, two thread hops per request for nothing.


async def get_state(request: Request) -> AppState:
    """The app's lifetime resources."""
    state: AppState = request.app.state.ct
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_db(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session per request, committed after the endpoint returns and before it answers.

    The dependency is function-scoped, so its exit runs before the response is sent: a
    failed commit becomes an error response instead of a success the client never sees undone.
    """
    async with state.sessionmaker() as session:
        yield session
        await session.commit()


SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]


async def get_now(state: StateDep) -> datetime:
    """The time of this request, from the app's clock."""
    return state.clock()


NowDep = Annotated[datetime, Depends(get_now)]


def bearer_token(request: Request) -> str | None:
    """The token of an 'Authorization: Bearer ...' header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_bearer(request: Request, expected: str, *, what: str, realm: str) -> None:
    """Refuse the request unless it bears `expected`, compared in constant time."""
    presented = bearer_token(request)
    if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Unauthorized(
            f"a valid 'Authorization: Bearer <{what}>' header is required",
            field="authorization",
            headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
        )


async def require_admin(request: Request, state: StateDep) -> None:
    """Let the request through only with the configured admin token."""
    configured = state.settings.admin_token
    if configured is None:
        raise AdminDisabled(
            "the ops API is disabled: set CALLTRACK_ADMIN_TOKEN to enable it",
        )
    check_bearer(request, configured.get_secret_value(), what="admin token", realm="calltrack-ops")


AdminDep = Depends(require_admin)
