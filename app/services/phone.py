"""Phone numbers in E.164."""

from __future__ import annotations

import functools

import phonenumbers


class InvalidPhone(ValueError):
    """The text is not a valid phone number."""


# Parsing costs about 0.1 ms and the same numbers come back all the time (a pool's numbers,
# repeat callers); failures are not cached, so they cost the same every time.
@functools.lru_cache(maxsize=65_536)
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
