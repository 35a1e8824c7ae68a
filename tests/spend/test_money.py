"""Costs to micros and back, exactly: no float anywhere."""

from __future__ import annotations

from decimal import Decimal

import pytest

from app.services.spend import cost_text, to_micros


@pytest.mark.parametrize(
    ("cost", "micros", "text"),
    [
        ("0", 0, "0.00"),
        ("-0", 0, "0.00"),
        ("0.000001", 1, "0.000001"),
        ("0.1", 100_000, "0.10"),
        ("12.5", 12_500_000, "12.50"),
        ("12.500000", 12_500_000, "12.50"),
        ("7", 7_000_000, "7.00"),
        ("1E+3", 1_000_000_000, "1000.00"),
        ("1234.5678", 1_234_567_800, "1234.5678"),
        ("999999999999.999999", 999_999_999_999_999_999, "999999999999.999999"),
    ],
)
def test_cost_round_trips_through_micros(cost: str, micros: int, text: str) -> None:
    assert to_micros(Decimal(cost)) == micros
    assert cost_text(micros) == text


@pytest.mark.parametrize(
    ("cost", "problem"),
    [
        ("0.0000001", "more than 6 decimal places"),
        ("1.1234567", "more than 6 decimal places"),
        ("NaN", "not a finite number"),
        ("Infinity", "not a finite number"),
    ],
)
def test_more_than_six_places_or_not_a_number_is_refused(cost: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        to_micros(Decimal(cost))
