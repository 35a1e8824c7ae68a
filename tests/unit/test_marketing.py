"""A session's channel: UTM first, then click ids, then the referrer, else direct."""

from __future__ import annotations

import pytest

from app.db.models import VisitorSession
from app.services.marketing import Channel, channel_of


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "x", "gclid": "g"},
            Channel("google", "cpc", "x"),
        ),
        ({"utm_source": "newsletter"}, Channel("newsletter", "(not set)", None)),
        ({"gclid": "g"}, Channel("google", "cpc", None)),
        ({"wbraid": "w", "utm_campaign": "ios"}, Channel("google", "cpc", "ios")),
        ({"msclkid": "m"}, Channel("bing", "cpc", None)),
        ({"fbclid": "f"}, Channel("facebook", "paid_social", None)),
        ({"referrer": "https://www.google.co.uk/search?q=x"}, Channel("google", "organic", None)),
        ({"referrer": "https://duckduckgo.com/"}, Channel("duckduckgo", "organic", None)),
        ({"referrer": "https://www.blog.example/post"}, Channel("blog.example", "referral", None)),
        ({"referrer": "not a url"}, Channel("(direct)", "(none)", None)),
        ({}, Channel("(direct)", "(none)", None)),
    ],
)
def test_channel(fields: dict[str, str], expected: Channel) -> None:
    assert channel_of(VisitorSession(**fields)) == expected
