"""Google Ads offline click conversions for calls, as the file Google Ads imports.

The format follows Google's documentation:
- the file: "Import conversions from ad clicks into Google Ads using files",
  https://support.google.com/google-ads/answer/7014069 (the "Google Click ID", "Conversion
  Name", "Conversion Time", "Conversion Value" and "Conversion Currency" columns; a time
  zone on each Conversion Time takes precedence over a "Parameters:TimeZone" row, so none
  is written);
- the click ids and the time: "Upload click conversions",
  https://developers.google.com/google-ads/api/docs/conversions/upload-clicks (a conversion
  names exactly one of gclid, gbraid and wbraid: a gbraid or wbraid next to a gclid is
  refused, as are a gbraid and a wbraid together) and the ClickConversion reference,
  https://developers.google.com/google-ads/api/reference/rpc/v17/ClickConversion
  ("yyyy-mm-dd hh:mm:ss+|-hh:mm", the time zone required).

A gbraid or wbraid is not a gclid, so it never goes in the "Google Click ID" column: a file
with such a call has "GBRAID" and "WBRAID" columns too, and each row fills exactly one of
the three. A file of gclid calls only is Google's plain five-column template. (The help page
says not to add columns to the template; the GBRAID and WBRAID column names are the ones
click-conversion files use for braids, not spelled out in the text above: check a braid
file against the template Google Ads offers under Conversions > Uploads before relying on
it.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from app.db.repositories import exports
from app.db.repositories.exports import ClickedCall
from app.services import csv_text, reports

CLICK_COLUMNS = {"gclid": "Google Click ID", "gbraid": "GBRAID", "wbraid": "WBRAID"}
CONVERSION_COLUMNS = (
    "Conversion Name",
    "Conversion Time",
    "Conversion Value",
    "Conversion Currency",
)


@dataclass(frozen=True)
class Conversion:
    """What every row of the file says besides its click id and time."""

    name: str
    value: Decimal
    currency: str


@dataclass(frozen=True)
class GoogleAdsExport:
    """The calls to upload for local days first..last of `tz`, by start."""

    first: date
    last: date
    tz: ZoneInfo
    calls: list[ClickedCall]


async def google_ads_conversions(
    db: AsyncSession,
    *,
    first: date,
    last: date,
    tz_name: str,
    min_talk_seconds: int,
    first_time_only: bool,
) -> GoogleAdsExport:
    """The calls from a Google ad click that started in local days first..last of `tz_name`
    and talked at least `min_talk_seconds`; only first-time callers' if asked."""
    tz = reports.zone(tz_name)
    start, end = reports.bounds(first, last, tz)
    found = await exports.google_ads_calls(
        db, start, end, min_talk_seconds=min_talk_seconds, first_time_only=first_time_only
    )
    return GoogleAdsExport(first=first, last=last, tz=tz, calls=found)


def conversion_time(at: datetime, tz: ZoneInfo) -> str:
    """`at` in `tz` as Google writes it: 2026-11-26 14:03:00+00:00."""
    local = at.astimezone(tz)
    offset = local.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    hours, minutes = divmod(int(abs(offset).total_seconds()) // 60, 60)
    return f"{local:%Y-%m-%d %H:%M:%S}{sign}{hours:02d}:{minutes:02d}"


def amount(value: Decimal) -> str:
    """A conversion value as plain digits (never an exponent)."""
    return format(value, "f")


def render_csv(export: GoogleAdsExport, conversion: Conversion) -> str:
    """The upload file: a header row, then one row per call."""
    braids = any(call.kind != "gclid" for call in export.calls)
    kinds: Sequence[str] = ("gclid", "gbraid", "wbraid") if braids else ("gclid",)
    header = [*(CLICK_COLUMNS[k] for k in kinds), *CONVERSION_COLUMNS]
    rows = (
        [
            *(call.click_id if call.kind == kind else "" for kind in kinds),
            conversion.name,
            conversion_time(call.started_at, export.tz),
            amount(conversion.value),
            conversion.currency,
        ]
        for call in export.calls
    )
    return csv_text.render([header, *rows])
