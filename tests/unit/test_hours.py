"""Business hours: validation, the canonical form, open-or-not and the next opening."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from app.services.hours import BusinessHours, InvalidHours, is_open, next_opening, normalise, parse

NINE_TO_FIVE = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def _hours(zone: str, weekly: Mapping[str, object]) -> BusinessHours:
    hours = parse({"timezone": zone, "weekly": weekly})
    assert hours is not None
    return hours


def _utc(
    year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


# --- parse -------------------------------------------------------------------------------


def test_parse_sorts_merges_and_fills_closed_days() -> None:
    hours = _hours(
        "America/New_York",
        {"tue": [["13:00", "17:00"], ["9:00", "12:00"], ["12:00", "13:00"]], "sun": []},
    )
    assert hours.zone == ZoneInfo("America/New_York")
    assert hours.weekly == ((), ((540, 1020),), (), (), (), (), ())


def test_parse_none_is_always_open() -> None:
    assert parse(None) is None


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], ""),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "17:00"]]}, "extra": 1}, "extra"),
        ({"weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": 5, "weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": "", "weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": "Mars/Olympus_Mons", "weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": "America", "weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": "../etc/passwd", "weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": "localtime", "weekly": {"mon": [["09:00", "17:00"]]}}, "timezone"),
        ({"timezone": "UTC"}, "weekly"),
        ({"timezone": "UTC", "weekly": [["09:00", "17:00"]]}, "weekly"),
        ({"timezone": "UTC", "weekly": {}}, "weekly"),
        ({"timezone": "UTC", "weekly": {"mon": [], "tue": []}}, "weekly"),
        ({"timezone": "UTC", "weekly": {"funday": [["09:00", "17:00"]]}}, "weekly.funday"),
        ({"timezone": "UTC", "weekly": {"Mon": [["09:00", "17:00"]]}}, "weekly.Mon"),
        ({"timezone": "UTC", "weekly": {"mon": None}}, "weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": "09:00-17:00"}}, "weekly.mon"),
        ({"timezone": "UTC", "weekly": {"mon": ["09:00", "17:00"]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "12:00", "17:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [[900, 1700]]}}, "weekly.mon[0]"),
        (
            {"timezone": "UTC", "weekly": {"tue": [["08:00", "09:00"], ["25:00", "26:00"]]}},
            "weekly.tue[1]",
        ),
        ({"timezone": "UTC", "weekly": {"mon": [["12:60", "13:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "24:01"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["24:00", "24:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["0900", "1700"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00 ", "17:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["9:0", "17:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["17:00", "09:00"]]}}, "weekly.mon[0]"),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "09:00"]]}}, "weekly.mon[0]"),
        (
            {"timezone": "UTC", "weekly": {"mon": [["09:00", "12:00"], ["11:59", "17:00"]]}},
            "weekly.mon[1]",
        ),
        (
            {"timezone": "UTC", "weekly": {"wed": [["13:00", "17:00"], ["09:00", "13:01"]]}},
            "weekly.wed[0]",
        ),
        ({"timezone": "UTC", "weekly": {"mon": [["09:00", "17:00"]] * 25}}, "weekly.mon"),
    ],
)
def test_parse_rejects_and_names_the_field(raw: object, field: str) -> None:
    with pytest.raises(InvalidHours) as info:
        parse(raw)  # type: ignore[arg-type]
    assert info.value.field == field


def test_parse_error_message_leaves_the_field_to_the_caller() -> None:
    with pytest.raises(InvalidHours) as info:
        parse({"timezone": "UTC", "weekly": {"mon": [["09:00", "17:00"], ["10:00", "11:00"]]}})
    assert info.value.field == "weekly.mon[1]"
    assert str(info.value) == "overlaps another interval"


# --- normalise ---------------------------------------------------------------------------


def test_normalise_merges_sorts_and_orders_days() -> None:
    raw: dict[str, object] = {
        "timezone": "Europe/Berlin",
        "weekly": {
            "sun": [["22:00", "24:00"]],
            "fri": [["13:00", "17:30"], ["8:00", "12:00"], ["12:00", "13:00"]],
            "mon": [["14:00", "18:00"], ["9:00", "12:00"]],
            "wed": [],
        },
    }
    assert normalise(raw) == {
        "timezone": "Europe/Berlin",
        "weekly": {
            "mon": [["09:00", "12:00"], ["14:00", "18:00"]],
            "fri": [["08:00", "17:30"]],
            "sun": [["22:00", "24:00"]],
        },
    }


def test_normalise_keeps_day_order_in_json() -> None:
    raw: dict[str, object] = {
        "timezone": "UTC",
        "weekly": {"sun": [["1:00", "2:00"]], "mon": [["1:00", "2:00"]]},
    }
    normal = normalise(raw)
    assert normal is not None
    weekly = normal["weekly"]
    assert isinstance(weekly, dict)
    assert list(weekly) == ["mon", "sun"]


def test_normalise_is_idempotent_and_none_stays_none() -> None:
    raw: dict[str, object] = {"timezone": "Asia/Kolkata", "weekly": NINE_TO_FIVE}
    once = normalise(raw)
    assert once is not None
    assert normalise(once) == once
    assert normalise(None) is None


def test_normalise_rejects_like_parse() -> None:
    with pytest.raises(InvalidHours) as info:
        normalise({"timezone": "Nowhere/Town", "weekly": NINE_TO_FIVE})
    assert info.value.field == "timezone"


# --- is_open -----------------------------------------------------------------------------

NEW_YORK = _hours("America/New_York", NINE_TO_FIVE)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Monday 2026-01-19, EST (UTC-5): 09:00 local is 14:00 UTC, 17:00 is 22:00.
        (_utc(2026, 1, 19, 13, 59, 59), False),
        (_utc(2026, 1, 19, 14, 0), True),
        (_utc(2026, 1, 19, 21, 59, 59), True),
        (_utc(2026, 1, 19, 22, 0), False),
        # Monday 2026-07-20, EDT (UTC-4).
        (_utc(2026, 7, 20, 12, 59), False),
        (_utc(2026, 7, 20, 13, 0), True),
        (_utc(2026, 7, 20, 20, 59, 59, 999999), True),
        (_utc(2026, 7, 20, 21, 0), False),
        # Saturday 2026-01-17 noon local.
        (_utc(2026, 1, 17, 17, 0), False),
    ],
)
def test_is_open_start_inclusive_end_exclusive(at: datetime, expected: bool) -> None:
    assert is_open(NEW_YORK, at) is expected


def test_is_open_accepts_any_aware_datetime() -> None:
    at = datetime(2026, 1, 19, 9, 0, tzinfo=ZoneInfo("America/New_York"))
    assert is_open(NEW_YORK, at)
    assert not is_open(NEW_YORK, datetime(2026, 1, 19, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo")))


def test_midnight_24_00_runs_into_next_day() -> None:
    hours = _hours("UTC", {"mon": [["18:00", "24:00"]], "tue": [["00:00", "06:00"]]})
    assert is_open(hours, _utc(2026, 1, 19, 23, 59, 59))
    assert is_open(hours, _utc(2026, 1, 20, 0, 0))
    assert not is_open(hours, _utc(2026, 1, 20, 6, 0))
    at = _utc(2026, 1, 20, 0, 0)
    assert next_opening(hours, at) is at


def test_always_open() -> None:
    at = _utc(2026, 1, 17, 3, 0)
    assert is_open(None, at)
    assert next_opening(None, at) is at


@pytest.mark.parametrize("hours", [None, NEW_YORK])
def test_naive_datetime_rejected(hours: BusinessHours | None) -> None:
    naive = datetime(2026, 1, 19, 12, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_open(hours, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        next_opening(hours, naive)


# --- next_opening ------------------------------------------------------------------------


def test_next_opening_while_open_is_at_itself() -> None:
    at = _utc(2026, 1, 19, 15, 30)
    assert next_opening(NEW_YORK, at) is at


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # Friday 2026-01-16 18:00 EST -> Monday 2026-01-19 09:00 EST.
        (_utc(2026, 1, 16, 23, 0), _utc(2026, 1, 19, 14, 0)),
        # Friday 2026-07-17 18:00 EDT -> Monday 2026-07-20 09:00 EDT.
        (_utc(2026, 7, 17, 22, 0), _utc(2026, 7, 20, 13, 0)),
        # Friday 17:00 exactly is already closed.
        (_utc(2026, 1, 16, 22, 0), _utc(2026, 1, 19, 14, 0)),
        # Early Tuesday -> the same morning.
        (_utc(2026, 1, 20, 5, 0), _utc(2026, 1, 20, 14, 0)),
        # Friday 2026-03-06 EST evening -> Monday 2026-03-09, after the change to EDT.
        (_utc(2026, 3, 6, 23, 0), _utc(2026, 3, 9, 13, 0)),
        # Friday 2026-10-30 EDT evening -> Monday 2026-11-02, after the change to EST.
        (_utc(2026, 10, 30, 22, 0), _utc(2026, 11, 2, 14, 0)),
    ],
)
def test_next_opening_new_york(at: datetime, expected: datetime) -> None:
    opening = next_opening(NEW_YORK, at)
    assert opening == expected
    assert opening.tzinfo is UTC


def test_next_opening_converts_other_zones_to_utc() -> None:
    at = datetime(2026, 1, 16, 18, 0, tzinfo=ZoneInfo("America/New_York"))
    opening = next_opening(NEW_YORK, at)
    assert opening == _utc(2026, 1, 19, 14, 0)
    assert opening.tzinfo is UTC


def test_next_opening_weekend_hours() -> None:
    # Dubai is UTC+4 all year.
    dubai = _hours("Asia/Dubai", {"sat": [["10:00", "14:00"]], "sun": [["10:00", "14:00"]]})
    # Saturday 2026-01-17 09:00 local -> 10:00 local.
    assert next_opening(dubai, _utc(2026, 1, 17, 5, 0)) == _utc(2026, 1, 17, 6, 0)
    # Saturday 15:00 local -> Sunday 10:00 local.
    assert next_opening(dubai, _utc(2026, 1, 17, 11, 0)) == _utc(2026, 1, 18, 6, 0)
    # Sunday 14:00 local -> next Saturday.
    assert next_opening(dubai, _utc(2026, 1, 18, 10, 0)) == _utc(2026, 1, 24, 6, 0)
    # Monday -> Saturday.
    assert next_opening(dubai, _utc(2026, 1, 19, 6, 0)) == _utc(2026, 1, 24, 6, 0)


def test_next_opening_a_week_away_on_the_same_day() -> None:
    hours = _hours("UTC", {"wed": [["10:00", "11:00"]]})
    # Wednesday 2026-01-21 11:00 -> Wednesday 2026-01-28 10:00.
    assert next_opening(hours, _utc(2026, 1, 21, 11, 0)) == _utc(2026, 1, 28, 10, 0)
    assert next_opening(hours, _utc(2026, 1, 21, 9, 59, 59)) == _utc(2026, 1, 21, 10, 0)


def test_kolkata_half_hour_offset() -> None:
    # IST is UTC+5:30: 09:00 is 03:30 UTC, 18:00 is 12:30 UTC.
    kolkata = _hours("Asia/Kolkata", {"mon": [["09:00", "18:00"]], "fri": [["09:00", "18:00"]]})
    assert not is_open(kolkata, _utc(2026, 1, 19, 3, 29, 59))
    assert is_open(kolkata, _utc(2026, 1, 19, 3, 30))
    assert is_open(kolkata, _utc(2026, 1, 19, 12, 29))
    assert not is_open(kolkata, _utc(2026, 1, 19, 12, 30))
    # Monday 08:30 IST -> 09:00 IST.
    assert next_opening(kolkata, _utc(2026, 1, 19, 3, 0)) == _utc(2026, 1, 19, 3, 30)
    # Monday 18:00 IST -> Friday 2026-01-23 09:00 IST.
    assert next_opening(kolkata, _utc(2026, 1, 19, 12, 30)) == _utc(2026, 1, 23, 3, 30)
    # Friday 18:00 IST -> Monday 2026-01-26 09:00 IST.
    assert next_opening(kolkata, _utc(2026, 1, 23, 12, 30)) == _utc(2026, 1, 26, 3, 30)


def test_auckland_is_a_day_ahead_of_utc() -> None:
    # January is NZDT, UTC+13: Monday 2026-01-19 09:00 local is Sunday 20:00 UTC.
    auckland = _hours("Pacific/Auckland", {"mon": [["09:00", "17:00"]]})
    assert not is_open(auckland, _utc(2026, 1, 18, 19, 59))
    assert is_open(auckland, _utc(2026, 1, 18, 20, 0))
    # Monday 17:00 local is Monday 04:00 UTC.
    assert is_open(auckland, _utc(2026, 1, 19, 3, 59))
    assert not is_open(auckland, _utc(2026, 1, 19, 4, 0))
    # Monday 08:00 UTC is Monday 21:00 local -> next Monday, Sunday 2026-01-25 20:00 UTC.
    assert next_opening(auckland, _utc(2026, 1, 19, 8, 0)) == _utc(2026, 1, 25, 20, 0)
    # Sunday 10:00 UTC is Sunday 23:00 local -> Sunday 20:00 UTC the same UTC day.
    assert next_opening(auckland, _utc(2026, 1, 18, 10, 0)) == _utc(2026, 1, 18, 20, 0)


def test_los_angeles_is_a_day_behind_utc() -> None:
    # PST is UTC-8: Friday 09:00-17:00 local is Friday 17:00 to Saturday 01:00 UTC.
    la = _hours("America/Los_Angeles", {"fri": [["09:00", "17:00"]]})
    assert is_open(la, _utc(2026, 1, 17, 0, 30))
    assert not is_open(la, _utc(2026, 1, 17, 1, 0))
    # Saturday 01:00 UTC (Friday 17:00 local) -> Friday 2026-01-23 09:00 local.
    assert next_opening(la, _utc(2026, 1, 17, 1, 0)) == _utc(2026, 1, 23, 17, 0)


# US clocks go 02:00 EST -> 03:00 EDT at 07:00 UTC on 2026-03-08 and 02:00 EDT -> 01:00 EST
# at 06:00 UTC on 2026-11-01 (both Sundays).


def test_spring_forward_interval_ending_at_the_gap() -> None:
    hours = _hours("America/New_York", {"sun": [["01:30", "03:00"]]})
    # 01:00 EST -> 01:30 EST (06:30 UTC).
    assert next_opening(hours, _utc(2026, 3, 8, 6, 0)) == _utc(2026, 3, 8, 6, 30)
    # Open until the clocks jump: 01:59 EST, then 03:00 EDT is already past the end.
    assert is_open(hours, _utc(2026, 3, 8, 6, 59, 59))
    assert not is_open(hours, _utc(2026, 3, 8, 7, 0))
    # Next Sunday 01:30 EDT.
    assert next_opening(hours, _utc(2026, 3, 8, 7, 0)) == _utc(2026, 3, 15, 5, 30)


def test_spring_forward_start_in_the_gap_opens_when_clocks_jump() -> None:
    hours = _hours("America/New_York", {"sun": [["02:30", "04:00"]]})
    # 02:30 does not exist that day: it opens at 03:00 EDT (07:00 UTC).
    assert next_opening(hours, _utc(2026, 3, 8, 6, 0)) == _utc(2026, 3, 8, 7, 0)
    assert not is_open(hours, _utc(2026, 3, 8, 6, 59, 59))
    assert is_open(hours, _utc(2026, 3, 8, 7, 0))
    assert is_open(hours, _utc(2026, 3, 8, 7, 59, 59))
    assert not is_open(hours, _utc(2026, 3, 8, 8, 0))
    # The Sunday before and after keep their usual 02:30.
    assert next_opening(hours, _utc(2026, 3, 1, 6, 0)) == _utc(2026, 3, 1, 7, 30)
    assert next_opening(hours, _utc(2026, 3, 8, 8, 0)) == _utc(2026, 3, 15, 6, 30)


def test_spring_forward_swallowing_the_whole_interval_skips_to_next_week() -> None:
    hours = _hours("America/New_York", {"sun": [["02:00", "02:30"]]})
    # No instant of 2026-03-08 shows 02:00-02:30, so next Sunday 02:00 EDT.
    assert next_opening(hours, _utc(2026, 3, 8, 5, 0)) == _utc(2026, 3, 15, 6, 0)
    # From just after the previous Sunday's hours, that is more than a week away.
    assert next_opening(hours, _utc(2026, 3, 1, 7, 30)) == _utc(2026, 3, 15, 6, 0)


def test_fall_back_ambiguous_start_takes_first_occurrence() -> None:
    hours = _hours("America/New_York", {"sun": [["01:30", "03:00"]]})
    # 01:00 EDT -> 01:30 EDT (05:30 UTC), the first of the two 01:30s.
    assert next_opening(hours, _utc(2026, 11, 1, 5, 0)) == _utc(2026, 11, 1, 5, 30)
    assert is_open(hours, _utc(2026, 11, 1, 5, 59, 59))
    # After the clocks go back the wall clock reads 01:00-01:29 again: closed by the clock,
    # so the next opening is the second 01:30 (01:30 EST, 06:30 UTC), not next week.
    assert not is_open(hours, _utc(2026, 11, 1, 6, 10))
    assert next_opening(hours, _utc(2026, 11, 1, 6, 10)) == _utc(2026, 11, 1, 6, 30)
    # 03:00 EST is 08:00 UTC.
    assert is_open(hours, _utc(2026, 11, 1, 7, 59, 59))
    assert not is_open(hours, _utc(2026, 11, 1, 8, 0))
    assert next_opening(hours, _utc(2026, 11, 1, 8, 0)) == _utc(2026, 11, 8, 6, 30)


def test_fall_back_start_after_the_fold() -> None:
    hours = _hours("America/New_York", {"sun": [["02:30", "04:00"]]})
    # 01:00 EDT -> 02:30 EST (07:30 UTC): 02:30 happens once, after the repeated hour.
    assert next_opening(hours, _utc(2026, 11, 1, 5, 0)) == _utc(2026, 11, 1, 7, 30)
    assert not is_open(hours, _utc(2026, 11, 1, 7, 29, 59))
    assert is_open(hours, _utc(2026, 11, 1, 8, 59, 59))
    assert not is_open(hours, _utc(2026, 11, 1, 9, 0))


def test_fall_back_clocks_going_back_into_an_interval_open_it() -> None:
    hours = _hours("America/New_York", {"sun": [["00:30", "01:45"]]})
    # 01:45 EDT (05:45 UTC) closes; at 06:00 UTC the clock reads 01:00 EST, inside again.
    assert not is_open(hours, _utc(2026, 11, 1, 5, 50))
    assert next_opening(hours, _utc(2026, 11, 1, 5, 50)) == _utc(2026, 11, 1, 6, 0)
    assert not is_open(hours, _utc(2026, 11, 1, 6, 45))
