"""A pool's business hours: when callbacks are placed, and when the next opening is."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
# The ops schema allows as many; the cap also bounds the work done per day.
MAX_INTERVALS_PER_DAY = 24

_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})")
_KEYS = frozenset({"timezone", "weekly"})
# A week always holds an opening unless every occurrence in it falls into a DST gap (an
# interval lying wholly inside skipped wall time); later weeks are tried only then.
_SEARCH_SPAN = timedelta(days=8)
_MAX_SPANS = 4
# Offsets never change twice within this step in the tz database, so comparing the offset
# at consecutive steps finds every transition.
_SCAN_STEP = 3600


class InvalidHours(ValueError):
    """Business hours that cannot be used; `field` is the path inside business_hours."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class BusinessHours:
    """Parsed hours: the zone and, Monday to Sunday, sorted merged [start, end) minutes."""

    zone: ZoneInfo
    weekly: tuple[tuple[tuple[int, int], ...], ...]


def parse(raw: Mapping[str, object] | None) -> BusinessHours | None:
    """Validate stored or submitted hours; None means always open."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidHours("", "must be an object with timezone and weekly")
    for key in raw:
        if key not in _KEYS:
            raise InvalidHours(str(key), "unknown field")
    zone = _zone(raw.get("timezone"))
    weekly = raw.get("weekly")
    if not isinstance(weekly, Mapping):
        raise InvalidHours("weekly", "must be an object of days")
    for key in weekly:
        if key not in DAYS:
            raise InvalidHours(f"weekly.{key}", "not a day (mon, tue, wed, thu, fri, sat, sun)")
    days = tuple(_day(f"weekly.{day}", weekly.get(day, [])) for day in DAYS)
    if not any(days):
        raise InvalidHours("weekly", "at least one opening interval is needed")
    return BusinessHours(zone=zone, weekly=days)


def normalise(raw: Mapping[str, object] | None) -> dict[str, object] | None:
    """Validate hours and return the canonical JSON to store."""
    hours = parse(raw)
    if hours is None:
        return None
    weekly: dict[str, object] = {
        day: [[_clock(start), _clock(end)] for start, end in intervals]
        for day, intervals in zip(DAYS, hours.weekly, strict=True)
        if intervals
    }
    return {"timezone": hours.zone.key, "weekly": weekly}


def is_open(hours: BusinessHours | None, at: datetime) -> bool:
    """Whether `at` (timezone-aware) falls inside an opening interval."""
    _require_aware(at)
    if hours is None:
        return True
    local = at.astimezone(hours.zone)
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in hours.weekly[local.weekday()])


def next_opening(hours: BusinessHours | None, at: datetime) -> datetime:
    """`at` when open, else the earliest later instant that is open, in UTC."""
    _require_aware(at)
    if hours is None or is_open(hours, at):
        return at
    low = at
    for _ in range(_MAX_SPANS):
        high = low + _SEARCH_SPAN
        found = _first_open(hours, low, high)
        if found is not None:
            return found
        # Nothing opened in (low, high], so high is closed and the search may go on from it.
        low = high
    raise ValueError(f"no opening within {(_SEARCH_SPAN * _MAX_SPANS).days} days")


def _first_open(hours: BusinessHours, low: datetime, high: datetime) -> datetime | None:
    """The earliest open instant in (low, high], `low` being closed."""
    # Open time is a union of [a, b) stretches, and each `a` is either a wall-clock start or
    # an offset change (clocks jumping into an interval); checking those with is_open keeps
    # the answer consistent with is_open whatever DST does to the wall clock.
    candidates = set(_transitions(hours.zone, low, high))
    first = low.astimezone(hours.zone).date() - timedelta(days=1)
    last = high.astimezone(hours.zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        for start, _end in hours.weekly[day.weekday()]:
            candidates.update(_instants(hours.zone, day, start))
        day += timedelta(days=1)
    for candidate in sorted(candidates):
        if low < candidate <= high and is_open(hours, candidate):
            return candidate
    return None


def _instants(zone: ZoneInfo, day: date, minute: int) -> Iterator[datetime]:
    """The UTC instants showing this wall time: none in a gap, two in a fold."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minute)
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        # zoneinfo maps gap times to a real instant with another wall time; those are dropped
        # because the offset change itself is a candidate.
        if instant.astimezone(zone).replace(tzinfo=None) == wall:
            yield instant


def _transitions(zone: ZoneInfo, low: datetime, high: datetime) -> Iterator[datetime]:
    """The instants in (low, high] at which the zone's UTC offset changes."""
    before = int(low.timestamp())
    end = int(high.timestamp()) + 1
    offset = _offset(zone, before)
    while before < end:
        after = min(before + _SCAN_STEP, end)
        changed = _offset(zone, after)
        if changed != offset:
            yield _moment(_bisect(zone, before, after, offset))
        before, offset = after, changed


def _bisect(zone: ZoneInfo, before: int, after: int, offset: timedelta | None) -> int:
    """The first second after `before` whose offset differs from `offset`."""
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(zone, middle) == offset:
            before = middle
        else:
            after = middle
    return after


def _offset(zone: ZoneInfo, timestamp: int) -> timedelta | None:
    return _moment(timestamp).astimezone(zone).utcoffset()


def _moment(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("a timezone-aware datetime is required")


@functools.cache
def _zone_names() -> frozenset[str]:
    # Walking the zone files takes ~20 ms, so once per process; "localtime" is the server's
    # own setting, not a zone, and would move the hours with the host's configuration.
    return frozenset(available_timezones() - {"localtime"})


def _zone(value: object) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise InvalidHours("timezone", "must be an IANA time zone name")
    # Checking the known names first keeps paths and odd keys away from the file lookup.
    if value not in _zone_names():
        raise InvalidHours("timezone", f"unknown time zone {value!r}")
    try:
        return ZoneInfo(value)
    # A listed file can still be unreadable or corrupt; ZoneInfoNotFoundError is a KeyError.
    except (KeyError, ValueError, OSError) as exc:
        raise InvalidHours("timezone", f"unknown time zone {value!r}") from exc


def _day(field: str, value: object) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, list | tuple):
        raise InvalidHours(field, "must be a list of [start, end] intervals")
    if len(value) > MAX_INTERVALS_PER_DAY:
        raise InvalidHours(field, f"at most {MAX_INTERVALS_PER_DAY} intervals")
    indexed = sorted(
        (_interval(f"{field}[{index}]", item), index) for index, item in enumerate(value)
    )
    merged: list[tuple[int, int]] = []
    for (start, end), index in indexed:
        if merged and start < merged[-1][1]:
            raise InvalidHours(f"{field}[{index}]", "overlaps another interval")
        if merged and start == merged[-1][1]:
            # Touching intervals are one stretch of opening; storing them apart adds nothing.
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def _interval(field: str, value: object) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidHours(field, 'must be ["HH:MM", "HH:MM"]')
    start = _minute(field, value[0])
    end = _minute(field, value[1])
    if start == MINUTES_PER_DAY:
        raise InvalidHours(field, "24:00 is only allowed as an end")
    if start >= end:
        raise InvalidHours(field, "start must be before end")
    return start, end


def _minute(field: str, value: object) -> int:
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidHours(field, f"{value!r} is not a time (HH:MM)")
    hour, minute = int(match.group(1)), int(match.group(2))
    total = hour * 60 + minute
    if minute > 59 or total > MINUTES_PER_DAY:
        raise InvalidHours(field, f"{value!r} is not a time (00:00 to 24:00)")
    return total


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"
