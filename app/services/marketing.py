"""A session's marketing channel: source, medium and campaign, as reports group them."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from app.db.models import VisitorSession

# Click ids identify the ad network even when a campaign was tagged without UTM.
_CLICK_IDS = (
    ("gclid", "google"),
    ("gbraid", "google"),
    ("wbraid", "google"),
    ("msclkid", "bing"),
    ("fbclid", "facebook"),
)
_SEARCH_ENGINES = {
    "google": "google",
    "bing": "bing",
    "yahoo": "yahoo",
    "duckduckgo": "duckduckgo",
    "baidu": "baidu",
    "yandex": "yandex",
    "ecosia": "ecosia",
}


@dataclass(frozen=True)
class Channel:
    """Where a visit came from."""

    source: str
    medium: str
    campaign: str | None


def _referrer_host(referrer: str | None) -> str | None:
    if not referrer:
        return None
    host = urlsplit(referrer).hostname
    return host.removeprefix("www.") if host else None


def channel_of(session: VisitorSession) -> Channel:
    """UTM tags first, then the click id's network, then the referrer, else direct."""
    if session.utm_source:
        return Channel(
            source=session.utm_source,
            medium=session.utm_medium or "(not set)",
            campaign=session.utm_campaign,
        )
    for field, network in _CLICK_IDS:
        if getattr(session, field):
            medium = "paid_social" if network == "facebook" else "cpc"
            return Channel(source=network, medium=medium, campaign=session.utm_campaign)
    host = _referrer_host(session.referrer)
    if host is not None:
        labels = host.split(".")
        for label in labels:
            if label in _SEARCH_ENGINES:
                return Channel(source=_SEARCH_ENGINES[label], medium="organic", campaign=None)
        return Channel(source=host, medium="referral", campaign=None)
    return Channel(source="(direct)", medium="(none)", campaign=None)
