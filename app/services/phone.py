"""Phone numbers in E.164."""

from __future__ import annotations

import phonenumbers


class InvalidPhone(ValueError):
    """The text is not a valid phone number."""


def to_e164(raw: str, *, region: str) -> str:
    """Normalise a phone number to E.164 ('+12125550100').

    Numbers without a country code are read in `region`; bare digits that are not valid
    there are tried as E.164 without the '+' (the tutorial's own format, '12565550101').
    """
    text = raw.strip()
    if not text or len(text) > 32:
        raise InvalidPhone("not a phone number")
    candidates = [(text, region)]
    digits = text.lstrip("+")
    if digits.isdigit() and not text.startswith("+"):
        candidates.append(("+" + digits, region))
    for candidate, reg in candidates:
        try:
            parsed = phonenumbers.parse(candidate, reg)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidPhone("not a valid phone number")


def digits(e164: str) -> str:
    """E.164 without the '+', as the tutorial's answers carry it."""
    return e164.lstrip("+")
