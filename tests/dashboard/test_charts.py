"""The SVG charts: well-formed, proportional, escaped, accessible, with empty states."""

from __future__ import annotations

from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree

from app.services import charts
from tests.dashboard.page import SVG, bars

HOSTILE = '<script>alert("x")</script>&amp;'


def parse(markup: str) -> Element:
    """The chart as XML: a malformed one fails here."""
    assert markup.startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    parsed: Element = ElementTree.fromstring(markup)
    return parsed


def columns(values: list[list[int]], names: list[str] | None = None, **kw: object) -> str:
    """A stacked column chart of these series."""
    names = names or [f"s{i}" for i in range(len(values))]
    return charts.stacked_columns(
        ident=str(kw.get("ident", "c")),
        title="Calls",
        desc="Calls per day",
        labels=[str(kw.get("label", "day")) + str(i) for i in range(len(values[0]))],
        series=[charts.Series(n, "#123456", v) for n, v in zip(names, values, strict=True)],
        unit=("call", "calls"),
        empty="No calls in this window",
    )


def height(rect: Element) -> float:
    """A rect's height."""
    return float(str(rect.get("height")))


def test_column_heights_are_proportional_and_stacked() -> None:
    svg = parse(columns([[1, 2, 4], [0, 2, 0]]))
    drawn = bars(svg)
    assert [r.get("data-value") for r in drawn] == ["1", "2", "2", "4"]
    one, two_first, two_second, four = (height(r) for r in drawn)
    assert two_first == pytest.approx(2 * one, abs=0.01)
    assert four == pytest.approx(4 * one, abs=0.01)
    assert two_second == pytest.approx(two_first, abs=0.01)
    # The second series sits right on top of the first in the same column.
    first_y = float(str(drawn[1].get("y")))
    assert float(str(drawn[2].get("y"))) + two_second == pytest.approx(first_y, abs=0.01)
    assert drawn[1].get("x") == drawn[2].get("x")
    # The tallest column (4) fits under the axis top, which is a round number of calls.
    ticks = [t.text for t in svg.iter(f"{SVG}text") if t.get("class") == "tick"]
    assert ticks == ["0", "1", "2", "3", "4"]
    assert four == pytest.approx(180, abs=0.01)


def test_every_chart_is_labelled_for_assistive_technology() -> None:
    for markup in (
        columns([[1, 2]]),
        columns([[0, 0]]),
        charts.horizontal_bars(
            ident="h", title="Calls", desc="Calls per day", rows=[], colour="#000", empty="-"
        ),
        charts.gauges(ident="g", title="Calls", desc="Calls per day", rows=[], empty="-"),
    ):
        svg = parse(markup)
        assert svg.get("role") == "img"
        assert svg.get("aria-label") == "Calls"
        assert svg.findtext(f"{SVG}title") == "Calls"
        desc = svg.find(f"{SVG}desc")
        assert desc is not None
        assert desc.text == "Calls per day"
        assert svg.get("aria-describedby") == desc.get("id")


def test_hostile_names_are_escaped() -> None:
    markup = columns([[3], [1]], names=[HOSTILE, "ok"], label=HOSTILE, ident=HOSTILE)
    assert "<script" not in markup
    svg = parse(markup)
    assert [r.get("data-series") for r in bars(svg)] == [HOSTILE, "ok"]
    assert str(bars(svg)[0].findtext(f"{SVG}title")).startswith(HOSTILE)
    assert HOSTILE[:20] in "".join(svg.itertext())
    row = charts.Bar(label=HOSTILE, value=1.5, text=HOSTILE)
    markup = charts.horizontal_bars(
        ident="h", title=HOSTILE, desc=HOSTILE, rows=[row], colour='"#f00', empty=HOSTILE
    )
    assert "<script" not in markup
    svg = parse(markup)
    assert svg.get("aria-label") == HOSTILE
    assert bars(svg)[0].get("fill") == '"#f00'
    gauge = charts.Gauge(label=HOSTILE, size=2, peak=1, current=1, target=2, text=HOSTILE)
    markup = charts.gauges(ident="g", title="t", desc="d", rows=[gauge], empty="-")
    assert "<script" not in markup
    assert parse(markup).find(f"{SVG}g[@class='legend']") is not None


def test_empty_states() -> None:
    svg = parse(columns([[0, 0, 0], [0, 0, 0]]))
    assert bars(svg) == []
    assert "No calls in this window" in "".join(svg.itertext())
    svg = parse(
        charts.horizontal_bars(
            ident="h", title="t", desc="d", rows=[], colour="#000", empty="Nothing bought"
        )
    )
    assert "Nothing bought" in "".join(svg.itertext())


def test_horizontal_bars_are_proportional_and_a_missing_value_draws_none() -> None:
    rows = [
        charts.Bar("a", 75.0, "75.00 USD"),
        charts.Bar("b", 30.0, "30.00 USD"),
        charts.Bar("c", None, "no calls"),
        charts.Bar("d", 0.0, "0.00 USD"),
    ]
    svg = parse(
        charts.horizontal_bars(ident="h", title="t", desc="d", rows=rows, colour="#000", empty="-")
    )
    widths = [float(str(r.get("width"))) for r in bars(svg)]
    assert len(widths) == 3
    assert widths[1] / widths[0] == pytest.approx(30 / 75, abs=1e-3)
    assert widths[2] == 0
    values = ["".join(t.itertext()) for t in svg.iter(f"{SVG}text") if t.get("class") == "value"]
    assert values == ["75.00 USD", "30.00 USD", "no calls", "0.00 USD"]


def test_gauges_share_one_scale() -> None:
    rows = [
        charts.Gauge("big", size=20, peak=10, current=5, target=8, text=""),
        charts.Gauge("small", size=5, peak=5, current=0, target=10, text=""),
    ]
    svg = parse(charts.gauges(ident="g", title="t", desc="d", rows=rows, empty="-"))
    tracks = [float(str(r.get("width"))) for r in bars(svg, "track")]
    peaks = [float(str(r.get("width"))) for r in bars(svg, "peak")]
    current = [float(str(r.get("width"))) for r in bars(svg, "current")]
    assert tracks[1] / tracks[0] == pytest.approx(5 / 20)
    assert peaks[0] / tracks[0] == pytest.approx(10 / 20)
    assert current == [pytest.approx(tracks[0] / 4), 0]


@pytest.mark.parametrize(
    ("peak", "top", "step"),
    [(0, 1, 1), (1, 1, 1), (3, 3, 1), (4, 4, 1), (5, 6, 2), (7, 8, 2), (12, 15, 5),
     (100, 100, 50), (101, 150, 50), (1234, 1500, 500)],
)  # fmt: skip
def test_axis_tops_are_round(peak: int, top: int, step: int) -> None:
    assert charts.axis_top(peak) == (top, step)
    assert top // step <= 5


def test_many_days_label_some_columns_only() -> None:
    svg = parse(columns([[1] * 90]))
    days = [t for t in svg.iter(f"{SVG}text") if t.get("class") == "day"]
    assert 8 <= len(days) <= 14
    assert len(bars(svg)) == 90
