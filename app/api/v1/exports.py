"""Ops API: exports for the ad platforms."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.api.deps import AdminDep, SessionDep, StateDep
from app.schemas.problem import problem_responses
from app.services import exports

router = APIRouter(
    prefix="/v1/exports",
    tags=["exports"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)


@router.get(
    "/google-ads-conversions.csv",
    response_class=Response,
    responses={
        **problem_responses(422),
        200: {
            "description": "Google Ads' offline click conversions upload file.",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def google_ads_conversions(
    db: SessionDep,
    state: StateDep,
    since: Annotated[date, Query(alias="from", description="First day, in `tz`.")],
    until: Annotated[date, Query(alias="to", description="Last day, in `tz` (included).")],
    tz: Annotated[
        str, Query(max_length=64, description="IANA time zone of the days and the times.")
    ] = "UTC",
    min_talk_seconds: Annotated[
        int | None,
        Query(ge=0, le=86400, description="Default: CALLTRACK_GOOGLE_ADS_MIN_TALK_SECONDS."),
    ] = None,
    conversion_name: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=100,
            description="The Google Ads conversion action. "
            "Default: CALLTRACK_GOOGLE_ADS_CONVERSION_NAME.",
        ),
    ] = None,
    first_time_only: Annotated[bool, Query(description="Only first-time callers.")] = False,
) -> Response:
    """Calls from a Google ad click as Google Ads' offline click conversions upload file.

    One row per call that started in the days `from`..`to` of `tz`, talked at least
    `min_talk_seconds` and was credited to a visit with a gclid, gbraid or wbraid; by start.
    Each row names exactly one click id: a gclid in "Google Click ID", else the visit's
    wbraid or gbraid in their own columns, which the file then has. The conversion time is
    the call's start in `tz`; value and currency come from the settings.
    """
    settings = state.settings
    found = await exports.google_ads_conversions(
        db,
        first=since,
        last=until,
        tz_name=tz,
        min_talk_seconds=(
            settings.google_ads_min_talk_seconds if min_talk_seconds is None else min_talk_seconds
        ),
        first_time_only=first_time_only,
    )
    conversion = exports.Conversion(
        name=settings.google_ads_conversion_name if conversion_name is None else conversion_name,
        value=settings.google_ads_conversion_value,
        currency=settings.google_ads_currency,
    )
    name = f"google-ads-conversions-{since.isoformat()}-{until.isoformat()}.csv"
    return Response(
        exports.render_csv(found, conversion),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
