"""Ops API under /v1, behind the admin bearer token."""

from fastapi import APIRouter

from app.api.v1 import (
    callbacks,
    calls,
    exports,
    pools,
    reports,
    sessions,
    site_keys,
    spend,
    webhooks,
)

# Each router carries its full /v1/... prefix, so a route's template is its whole path.
router = APIRouter()
router.include_router(callbacks.router)
router.include_router(calls.router)
router.include_router(exports.router)
router.include_router(pools.router)
router.include_router(reports.router)
router.include_router(sessions.router)
router.include_router(site_keys.router)
router.include_router(spend.router)
router.include_router(webhooks.router)
