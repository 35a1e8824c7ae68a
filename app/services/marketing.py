"""A session's marketing channel: source, medium and campaign, as reports group them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.db.models import VisitorSession
from app.db.repositories.calls import CHANNEL_FIELDS

# Click ids identify the ad network even when a campaign was tagged without UTM.
_CLICK_IDS = (
    ("gclid", "google"),
    ("gbraid", "google"),
    ("wbraid", "google"),
    ("msclkid", "bing"),
    ("fbclid", "facebook"),
)
# The context fields the channel and the landing page are derived from.
CHANNEL_INPUTS: tuple[str, ...] = (*CHANNEL_FIELDS, "landing_url")
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


def channel_from(context: Mapping[str, str | None]) -> Channel:
    """UTM tags first, then the click id's network, then the referrer, else direct."""
    if context.get("utm_source"):
        return Channel(
            source=str(context["utm_source"]),
            medium=context.get("utm_medium") or "(not set)",
            campaign=context.get("utm_campaign"),
        )
    for field, network in _CLICK_IDS:
        if context.get(field):
            medium = "paid_social" if network == "facebook" else "cpc"
            return Channel(source=network, medium=medium, campaign=context.get("utm_campaign"))
    host = _referrer_host(context.get("referrer"))
    if host is not None:
        labels = host.split(".")
        for label in labels:
            if label in _SEARCH_ENGINES:
                return Channel(source=_SEARCH_ENGINES[label], medium="organic", campaign=None)
        return Channel(source=host, medium="referral", campaign=None)
    return Channel(source="(direct)", medium="(none)", campaign=None)


def channel_of(session: VisitorSession) -> Channel:
    """The session's channel, from its stored context."""
    return channel_from({field: getattr(session, field) for field in CHANNEL_INPUTS})


def landing_page(url: str | None) -> str | None:
    """The landing URL without its query and fragment: what reports group pages by."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url.split("?", 1)[0].split("#", 1)[0][:2048] or None
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path or '/'}"[:2048]


def derived(context: Mapping[str, str | None]) -> dict[str, str | None]:
    """The columns a session keeps for reports, from its context."""
    channel = channel_from(context)
    return {
        "source": channel.source[:255],
        "medium": channel.medium[:255],
        "campaign": channel.campaign[:255] if channel.campaign else None,
        "landing_page": landing_page(context.get("landing_url")),
    }
