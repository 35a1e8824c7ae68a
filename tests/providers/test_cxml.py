"""The CXML builder: escaping, well-formed output, Dial options and input checks."""

from __future__ import annotations

from typing import Any

import pytest
from defusedxml.ElementTree import fromstring

from app.providers.voice.cxml import XML_DECLARATION, Response


def parse(doc: Response) -> Any:
    """Parse a rendered document back; fails the test when it is not well-formed XML."""
    text = doc.render()
    assert text.startswith(XML_DECLARATION)
    return fromstring(text.encode("utf-8"))


def test_empty_response() -> None:
    assert str(Response()) == XML_DECLARATION + "<Response />"


def test_say_escapes_text_and_attributes() -> None:
    nasty = "Tom & Jerry <b>\"quoted\"</b> 'single' ]]> </Say><Hangup/>"
    doc = Response().say(nasty, voice='wo"man & <co>', language="en-US", loop=2)
    text = doc.render()
    assert "<Hangup" not in text
    assert "&amp;" in text
    assert "&lt;b&gt;" in text
    root = parse(doc)
    (say,) = list(root)
    assert say.tag == "Say"
    assert say.text == nasty
    assert say.get("voice") == 'wo"man & <co>'
    assert say.get("language") == "en-US"
    assert say.get("loop") == "2"


def test_say_omits_unset_attributes() -> None:
    root = parse(Response().say("hello"))
    assert dict(root[0].attrib) == {}


def test_verbs_in_order() -> None:
    doc = Response().say("one").pause(2).redirect("https://x.test/next?a=1&b=2").hangup()
    root = parse(doc)
    assert [child.tag for child in root] == ["Say", "Pause", "Redirect", "Hangup"]
    assert root[1].get("length") == "2"
    assert root[2].text == "https://x.test/next?a=1&b=2"
    assert "a=1&amp;b=2" in doc.render()


def test_reject_reason() -> None:
    assert parse(Response().reject())[0].attrib == {}
    assert parse(Response().reject("busy"))[0].get("reason") == "busy"
    with pytest.raises(ValueError, match="reason"):
        Response().reject("because")


def test_dial_with_all_options() -> None:
    doc = Response().dial(
        "+15551230001",
        caller_id="+15559990000",
        action="https://calltrack.test/voice/dial-done?s=1&t=2",
        method="post",
        timeout=30,
        record=True,
        time_limit=3600,
        whisper_url="https://calltrack.test/voice/whisper?x=<1>",
        headers={"X-Calltrack-Session": 'abc"123&', "X-Pool": "p1"},
    )
    root = parse(doc)
    dial = root[0]
    assert dial.tag == "Dial"
    assert dict(dial.attrib) == {
        "action": "https://calltrack.test/voice/dial-done?s=1&t=2",
        "method": "POST",
        "callerId": "+15559990000",
        "timeout": "30",
        "record": "record-from-answer",
        "timeLimit": "3600",
    }
    number, first, second = list(dial)
    assert number.tag == "Number"
    assert number.text == "+15551230001"
    assert number.get("url") == "https://calltrack.test/voice/whisper?x=<1>"
    assert (first.tag, first.get("name"), first.get("value")) == (
        "Header",
        "X-Calltrack-Session",
        'abc"123&',
    )
    assert (second.get("name"), second.get("value")) == ("X-Pool", "p1")


def test_dial_minimal_and_several_numbers() -> None:
    root = parse(Response().dial(["+15550000001", "+15550000002"]))
    dial = root[0]
    assert dict(dial.attrib) == {}  # no method without action, no record when False
    assert [n.text for n in dial] == ["+15550000001", "+15550000002"]
    assert all(n.get("url") is None for n in dial)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"time_limit": -5}, "time_limit"),
        ({"method": "PUT"}, "method"),
    ],
)
def test_dial_rejects_bad_options(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Response().dial("+15550000001", **kwargs)


def test_dial_needs_numbers() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Response().dial([])
    with pytest.raises(ValueError, match="number"):
        Response().dial("\x00 ")


@pytest.mark.parametrize(
    "name", ["Calltrack-Session", "x-lower", "X-", "X-Bad Name", "X-Bad:Colon", "X-\r\nInjected"]
)
def test_header_names_must_be_x_tokens(name: str) -> None:
    with pytest.raises(ValueError, match="X-"):
        Response().dial("+15550000001", headers={name: "v"})


@pytest.mark.parametrize("value", ["a\r\nVia: evil", "a\nb", "bell\x07", "nul\x00"])
def test_header_values_reject_control_characters(value: str) -> None:
    with pytest.raises(ValueError, match="control"):
        Response().dial("+15550000001", headers={"X-Ok": value})


def test_forbidden_control_characters_are_stripped() -> None:
    text = "a\x00b\x01c\x08d\x0be\x0cf\x1fg\ud800h\ufffei\tj\nk"
    doc = Response().say(text, voice="v\x00x").dial("+1555\x1b0000001", caller_id="+1\x00555")
    root = parse(doc)
    assert root[0].text == "abcdefghi\tj\nk"
    assert root[0].get("voice") == "vx"
    assert root[1][0].text == "+15550000001"
    assert root[1].get("callerId") == "+1555"


def test_pause_needs_positive_seconds() -> None:
    with pytest.raises(ValueError, match="seconds"):
        Response().pause(0)


def test_say_loop_must_be_non_negative_int() -> None:
    assert parse(Response().say("x", loop=0))[0].get("loop") == "0"
    with pytest.raises(ValueError, match="loop"):
        Response().say("x", loop=-1)


def test_non_ascii_survives() -> None:
    root = parse(Response().say("Grüße, 你好 🎉"))
    assert root[0].text == "Grüße, 你好 🎉"
