"""Ops API: reports."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import AdminDep, SessionDep
from app.schemas.problem import problem_responses
from app.schemas.reports import AttributionReport, GroupBy, ReportFigures, ReportRow
from app.services import csv_text, reports

router = APIRouter(
    prefix="/v1/reports",
    tags=["reports"],
    dependencies=[AdminDep],
    responses=problem_responses(401, 503),
)

Currency = Annotated[str, Query(pattern=r"^[A-Za-z]{3}$", description="ISO 4217, e.g. USD.")]


def _figures(row: reports.Row) -> dict[str, object]:
    return {
        "sessions": row.sessions,
        "numbers_leased": row.numbers_leased,
        "calls": row.calls.calls,
        "first_time_calls": row.calls.first_time,
        "answered_calls": row.calls.answered,
        "avg_talk_seconds": row.avg_talk_seconds,
        "callbacks_requested": row.callbacks_requested,
        "callbacks_completed": row.callbacks_completed,
        "spend": reports.money(row.spend_micros) if row.spend_micros is not None else None,
        "cost_per_call": row.cost_per(row.calls.calls),
        "cost_per_first_time_call": row.cost_per(row.calls.first_time),
    }


def _csv(report: AttributionReport) -> str:
    columns = ["group", *ReportFigures.model_fields]
    rows: list[list[object]] = [[report.group_by, *columns[1:]]]
    for item in [*report.rows, ReportRow(group="(total)", **report.totals.model_dump())]:
        values = item.model_dump(mode="json")
        rows.append(["" if values[c] is None else values[c] for c in columns])
    return csv_text.render(rows)


@router.get(
    "/attribution",
    response_model=AttributionReport,
    responses={
        **problem_responses(422),
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
async def attribution_report(
    request: Request,
    db: SessionDep,
    since: Annotated[date, Query(alias="from", description="First day, in `tz`.")],
    until: Annotated[date, Query(alias="to", description="Last day, in `tz` (included).")],
    group_by: GroupBy = "source",
    tz: Annotated[str, Query(max_length=64, description="IANA time zone of the days.")] = "UTC",
    currency: Currency | None = None,
    format: Annotated[
        Literal["json", "csv"] | None, Query(description="csv: the same as `Accept: text/csv`.")
    ] = None,
) -> Response | AttributionReport:
    """Per group: visits, numbers leased, calls (first-time, answered, talk time), callbacks,
    spend and cost per call. Calls count by their start, spend by the day it was bought."""
    found = await reports.attribution(
        db, first=since, last=until, tz_name=tz, dimension=group_by, currency=currency
    )
    report = AttributionReport.model_validate(
        {
            "from": found.first,
            "to": found.last,
            "tz": found.tz,
            "start": found.start,
            "end": found.end,
            "group_by": found.dimension,
            "currency": found.currency,
            "rows": [{"group": row.group, **_figures(row)} for row in found.rows],
            "totals": _figures(found.totals),
        }
    )
    wants_csv = format == "csv" or (
        format is None and "text/csv" in request.headers.get("accept", "")
    )
    if not wants_csv:
        return report
    name = f"attribution-{group_by}-{since.isoformat()}-{until.isoformat()}.csv"
    return Response(
        _csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
