"""Recognise obvious crawlers so they do not drain tracking pools."""

from __future__ import annotations

import re

# Self-declared crawlers and link-preview fetchers. Headless browsers are not listed: real
# test suites and prerender services use them, and they do not claim to be bots.
_BOT_RE = re.compile(
    # "Googlebot/2.1", "bingbot)", "DuckDuckBot-Https"; not "Cubot X30" (a phone brand).
    r"(?:bot|crawler|spider)(?:[/;)_+-]|$)|\bbot\b"
    r"|slurp|facebookexternalhit|facebookcatalog|embedly|quora link preview|outbrain"
    r"|vkshare|w3c_validator|lighthouse|pagespeed|google-inspectiontool"
    r"|mediapartners-google|adsbot-google|feedfetcher|bingpreview|yahoo! slurp|ia_archiver"
    r"|httrack|wget|scrapy",
    re.IGNORECASE,
)


def is_bot(user_agent: str | None) -> bool:
    """Whether the user agent declares itself a crawler or preview fetcher."""
    return bool(user_agent) and _BOT_RE.search(user_agent or "") is not None
