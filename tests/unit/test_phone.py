"""E.164 normalisation."""

from __future__ import annotations

import pytest

from app.services.phone import InvalidPhone, digits, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+12565550101", "US", "+12565550101"),
        ("12127778900", "US", "+12127778900"),
        ("(212) 777-8900", "US", "+12127778900"),
        ("212.777.8900", "US", "+12127778900"),
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("442079460958", "US", "+442079460958"),
        ("020 7946 0958", "GB", "+442079460958"),
        (" +1 256 555 0101 ", "US", "+12565550101"),
    ],
)
def test_valid_numbers_become_e164(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region=region) == expected


@pytest.mark.parametrize("raw", ["", "12", "1212777890", "abc", "+999 123", "1" * 40])
def test_invalid_numbers_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        to_e164(raw, region="US")


def test_digits_drop_the_plus() -> None:
    assert digits("+12565550101") == "12565550101"
