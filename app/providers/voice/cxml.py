"""A small CXML (Cloudonix's TwiML-like markup) builder that escapes everything it is given.

Every value goes through xml.etree.ElementTree, so text and attribute values are escaped by
the serializer, never by string concatenation. Characters XML 1.0 forbids (most C0 controls,
lone surrogates, U+FFFE/U+FFFF) are stripped from text and attribute values, because the
serializer would otherwise emit a document no parser accepts. SIP header names and values are
stricter: a control character there is rejected (ValueError), since a CR/LF in a SIP header is
a header-injection attempt, not a typo.

Spellings, and where they come from:

Verified against Cloudonix's own material (developers.cloudonix.com, cloudonix/cxml-php, and
the Cloudonix, Inc. JavaScript SDK greenfieldtech-nirs/cloudonix-js):
- `<Response>` root; verbs `Say`, `Pause`, `Dial`, `Hangup`, `Reject`, `Redirect`.
- `<Say voice=".." language=".." loop="N">text</Say>`.
- `<Pause length="N"/>` (cxml-php README, cloudonix-js pause.js).
- `<Redirect>url</Redirect>` with the URL as the element's text (cxml-php README).
- `<Reject reason=".."/>` with reason one of rejected, busy, congestion, failed (cloudonix-js).
- `<Dial>` attributes `action`, `method`, `callerId`, `timeout`, `timeLimit`, `record`; the SDK's
  recording example uses `record="record-from-answer"` (also `record-from-ringing`).
- `<Number>` noun inside `<Dial>` holding the number as text.
- `<Header name="X-..." value=".."/>` inside `<Dial>`; "a valid header must have a name that
  starts with X-" (Cloudonix's `<Header>` page). Cloudonix documents no required order between
  Header and Number nouns; Numbers come first here.

Assumed (TwiML semantics, not found in Cloudonix's documentation or SDKs):
- `<Number url="...">`: a CXML document run on the answering party before the legs are
  bridged (the "whisper"). Cloudonix's SDKs emit no attributes on `<Number>`.
- `method` only matters together with `action`, so it is written only when `action` is set.
- Booleans render as `true`/`false` and integers in decimal, as in TwiML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from xml.etree.ElementTree import Element, SubElement, tostring

XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
RECORD_FROM_ANSWER = "record-from-answer"
REJECT_REASONS = frozenset({"rejected", "busy", "congestion", "failed"})
HTTP_METHODS = frozenset({"GET", "POST"})

# Everything outside XML 1.0's Char production: C0 controls other than TAB/LF/CR, surrogates
# (Python strings may hold lone ones), and the two non-characters U+FFFE and U+FFFF.
_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# SIP header field names are RFC 3261 tokens.
_SIP_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
# A SIP header value may hold visible characters, spaces and tabs, nothing that ends the line.
_HEADER_VALUE_BAD = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def clean_text(value: str) -> str:
    """Drop the characters XML 1.0 cannot carry; everything else is left to the serializer."""
    return _FORBIDDEN.sub("", value)


def _render(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return clean_text(value)


def _positive_int(name: str, value: int) -> int:
    # bool is an int subclass; `timeout=True` is a bug, not one second.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer")
    return value


def _non_empty(name: str, value: str) -> str:
    cleaned = clean_text(value).strip()
    if not cleaned:
        raise ValueError(f"{name} must not be empty")
    return cleaned


class Response:
    """A CXML document: call the verb methods in order, then render it."""

    def __init__(self) -> None:
        self._root = Element("Response")

    def _verb(self, tag: str, attrs: Mapping[str, str | int | bool | None]) -> Element:
        element = SubElement(self._root, tag)
        for key, value in attrs.items():
            if value is not None:
                element.set(key, _render(value))
        return element

    def say(
        self,
        text: str,
        *,
        voice: str | None = None,
        language: str | None = None,
        loop: int | None = None,
    ) -> Response:
        """Speak `text` with text-to-speech."""
        if loop is not None and (isinstance(loop, bool) or not isinstance(loop, int) or loop < 0):
            raise ValueError("loop must be a non-negative integer")
        element = self._verb("Say", {"voice": voice, "language": language, "loop": loop})
        element.text = clean_text(text)
        return self

    def pause(self, seconds: int) -> Response:
        """Wait silently for `seconds`."""
        self._verb("Pause", {"length": _positive_int("seconds", seconds)})
        return self

    def dial(
        self,
        number_or_numbers: str | Sequence[str],
        *,
        caller_id: str | None = None,
        action: str | None = None,
        method: str = "POST",
        timeout: int | None = None,
        record: bool = False,
        time_limit: int | None = None,
        whisper_url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Connect the call to one number, or ring several at once (first to answer wins)."""
        numbers = [number_or_numbers] if isinstance(number_or_numbers, str) else number_or_numbers
        if not numbers:
            raise ValueError("dial needs at least one number")
        cleaned = [_non_empty("number", number) for number in numbers]
        method = method.upper()
        if method not in HTTP_METHODS:
            raise ValueError("method must be GET or POST")
        header_items = [_checked_header(name, value) for name, value in (headers or {}).items()]
        dial = self._verb(
            "Dial",
            {
                "action": action,
                "method": method if action is not None else None,
                "callerId": caller_id,
                "timeout": None if timeout is None else _positive_int("timeout", timeout),
                "record": RECORD_FROM_ANSWER if record else None,
                "timeLimit": None
                if time_limit is None
                else _positive_int("time_limit", time_limit),
            },
        )
        for number in cleaned:
            noun = SubElement(dial, "Number")
            if whisper_url is not None:
                noun.set("url", _render(whisper_url))
            noun.text = number
        for name, value in header_items:
            SubElement(dial, "Header", {"name": name, "value": value})
        return self

    def hangup(self) -> Response:
        """End the call."""
        self._verb("Hangup", {})
        return self

    def reject(self, reason: str | None = None) -> Response:
        """Refuse the call without answering it."""
        if reason is not None and reason not in REJECT_REASONS:
            raise ValueError(f"reason must be one of {', '.join(sorted(REJECT_REASONS))}")
        self._verb("Reject", {"reason": reason})
        return self

    def redirect(self, url: str) -> Response:
        """Continue the call with the CXML found at `url`."""
        element = self._verb("Redirect", {})
        element.text = _non_empty("url", url)
        return self

    def render(self) -> str:
        """The document as a string, XML declaration first."""
        return XML_DECLARATION + tostring(self._root, encoding="unicode")

    def __str__(self) -> str:
        return self.render()


def _checked_header(name: str, value: str) -> tuple[str, str]:
    # Rejected rather than cleaned: a mangled header name or a value with a line break would
    # silently change what reaches the far end's SIP stack.
    if not name.startswith("X-") or len(name) < 3 or not _SIP_TOKEN.match(name):
        raise ValueError("SIP header names must start with 'X-' and be a SIP token")
    if _HEADER_VALUE_BAD.search(value) or _FORBIDDEN.search(value):
        raise ValueError(f"the value of SIP header {name} holds control characters")
    return name, value
