"""The dashboard's window of local days, the caller mask and the top sources, without HTTP."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from app.db.repositories.dashboard import DayCount
from app.errors import InvalidInput
from app.services import dashboard


def test_the_window_ends_today_in_the_zone() -> None:
    now = datetime(2026, 11, 14, 2, 0, tzinfo=UTC)  # still the 13th in New York
    span = dashboard.window(days="3", tz="America/New_York", now=now)
    assert (span.first, span.last) == (date(2026, 11, 11), date(2026, 11, 13))
    assert span.dates == [date(2026, 11, 11), date(2026, 11, 12), date(2026, 11, 13)]
    assert span.edges[0] == datetime(2026, 11, 11, 5, 0, tzinfo=UTC)
    assert span.edges[-1] == datetime(2026, 11, 14, 5, 0, tzinfo=UTC)


def test_a_day_that_changes_the_clocks_has_its_own_length() -> None:
    # Europe/London leaves summer time on 2026-10-25: that day lasts 25 hours.
    now = datetime(2026, 10, 26, 12, 0, tzinfo=UTC)
    span = dashboard.window(days="3", tz="Europe/London", now=now)
    lengths = [b - a for a, b in pairwise(span.edges)]
    assert lengths == [timedelta(hours=24), timedelta(hours=25), timedelta(hours=24)]
    assert span.edges[0] == datetime(2026, 10, 23, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("days", "tz", "field"),
    [("0", "UTC", "query.days"), ("367", "UTC", "query.days"), ("1.5", "UTC", "query.days"),
     ("9" * 5000, "UTC", "query.days"), ("0030", "UTC", "query.days"),
     ("", "UTC", "query.days"), ("\u0663", "UTC", "query.days"), ("7", "Nowhere/Land", "query.tz"),
     ("7", "", "query.tz")],
)  # fmt: skip
def test_bad_windows_name_their_field(days: str, tz: str, field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        dashboard.window(days=days, tz=tz, now=datetime(2026, 11, 14, tzinfo=UTC))
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("number", "shown"),
    [("+16175550100", "\u2022\u2022\u2022 0100"),
     ("sip:+44 20 7946 0958@x", "\u2022\u2022\u2022 0958"),
     ("anonymous", "withheld"), ("12345", "withheld"), ("", "withheld")],
)  # fmt: skip
def test_callers_are_masked(number: str, shown: str) -> None:
    assert dashboard.mask(number) == shown


def counts(*rows: tuple[int, str | None, int]) -> list[DayCount]:
    """Day counts, every call answered."""
    return [DayCount(day=d, source=s, calls=c, answered=c) for d, s, c in rows]


def test_the_top_six_sources_and_the_rest_as_other() -> None:
    found = dashboard._sources(
        counts(*[(0, f"s{i}", 10 - i) for i in range(8)], (1, "s7", 5), (1, None, 1)), 2
    )
    # s7 has 3 + 5 = 8 calls: third busiest. s5, s6 and the calls without a source fold.
    assert [(s.source, s.other, s.calls) for s in found] == [
        ("s0", False, [10, 0]),
        ("s1", False, [9, 0]),
        ("s2", False, [8, 0]),
        ("s7", False, [3, 5]),
        ("s3", False, [7, 0]),
        ("s4", False, [6, 0]),
        (None, True, [5 + 4, 1]),
    ]


def test_seven_sources_are_shown_without_an_other() -> None:
    found = dashboard._sources(counts(*[(0, f"s{i}", 1) for i in range(6)], (0, None, 1)), 1)
    assert [(s.source, s.other) for s in found] == [(f"s{i}", False) for i in range(6)] + [
        (None, False)
    ]
