"""Liveness, readiness and metrics for the platform running the service."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.api.deps import StateDep
from app.db.session import READ_ONLY
from app.errors import problem
from app.schemas.problem import problem_responses

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=problem_responses(503))
async def readyz(state: StateDep) -> Response:
    """The database answers."""
    try:
        async with asyncio.timeout(3), state.engine.connect() as conn:
            await conn.execution_options(**{READ_ONLY: True})
            await conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError, TimeoutError):
        return problem(503, "not-ready", "Not ready", "the database is unreachable")
    return Response('{"status":"ready"}', media_type="application/json")


@router.get("/metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    """Prometheus metrics."""
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
