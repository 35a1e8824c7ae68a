"""Sessions keep the channel reports group them by, as the attribution rule decides it."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.helpers import lease, make_pool
from tests.support import ADMIN

TODAY = {"from": "2026-11-26", "to": "2026-11-26"}  # the test clock's day


async def sources(client: httpx.AsyncClient, group_by: str = "source") -> dict[Any, int]:
    """Sessions per group in today's report."""
    answer = await client.get(
        "/v1/reports/attribution", params={**TODAY, "group_by": group_by}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    return {row["group"]: row["sessions"] for row in answer.json()["rows"]}


async def test_a_click_id_alone_makes_the_network_the_source(client: httpx.AsyncClient) -> None:
    await make_pool(client)
    await lease(client, context={"gclid": "Cj0KCQ", "landing_url": "https://s.example/x?y=1"})
    await lease(client, context={"referrer": "https://duckduckgo.com/"})
    await lease(client)
    assert await sources(client) == {"google": 1, "duckduckgo": 1, "(direct)": 1}
    assert await sources(client, "medium") == {"cpc": 1, "organic": 1, "(none)": 1}
    assert await sources(client, "landing_page") == {"https://s.example/x": 1, None: 2}


async def test_context_given_after_the_first_request_moves_the_visit(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    first = await lease(client)  # a backend's form, without context
    assert await sources(client) == {"(direct)": 1}
    await lease(
        client,
        session_id=first["session_id"],
        context={"utm_source": "newsletter", "utm_medium": "email"},
    )
    assert await sources(client) == {"newsletter": 1}
    # First touch: a later campaign does not move it again.
    await lease(client, session_id=first["session_id"], context={"utm_source": "bing"})
    assert await sources(client) == {"newsletter": 1}


async def test_a_callback_form_carries_its_context_to_the_report(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    queued = await client.post(
        "/callback",
        json={"phone": "+12127778900", "context": {"utm_source": "flyer", "utm_medium": "print"}},
    )
    assert queued.status_code == 200, queued.text
    answer = await client.get("/v1/reports/attribution", params=TODAY, headers=ADMIN)
    [row] = answer.json()["rows"]
    assert (row["group"], row["sessions"], row["callbacks_requested"]) == ("flyer", 1, 1)


async def test_a_visitor_written_group_cannot_be_a_formula_in_the_csv(
    client: httpx.AsyncClient,
) -> None:
    await make_pool(client)
    await lease(client, context={"utm_source": '=HYPERLINK("http://evil.example")'})
    answer = await client.get(
        "/v1/reports/attribution", params={**TODAY, "format": "csv"}, headers=ADMIN
    )
    assert answer.text.split("\r\n")[1].startswith('"\'=HYPERLINK(""http://evil.example"")",1,')
