"""Charts as inline SVG: pure functions from figures to markup, every text escaped.

No script and no style attribute: colours are presentation attributes, which a page whose
CSP forbids inline styles still renders; fonts come from the page's stylesheet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 720
LEFT, RIGHT = 44, 12  # room for the value axis, and for the last bar's edge
CHAR_PX = 7  # a 12 px sans-serif character's rough advance, to lay out labels
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")
OTHER = "#9aa5b1"
INK, MUTED, GRID = "#1d2733", "#5b6b7c", "#e3e8ee"
TRACK, PEAK, NOW, TARGET = "#dfe6ee", "#8fb3d9", "#2f5f8f", "#e15759"


@dataclass(frozen=True)
class Series:
    """One stacked series: its name, its colour and a value per column."""

    name: str
    colour: str
    values: Sequence[int]


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, its length (None: no bar) and the text after it."""

    label: str
    value: float | None
    text: str


@dataclass(frozen=True)
class Gauge:
    """One pool: its size, the most and the fewest leases, and the size it should have."""

    label: str
    size: int
    peak: int
    current: int
    target: int
    text: str


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _clip(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


def _open(ident: str, title: str, desc: str, width: int, height: float) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{_e(ident)}" '
        f'viewBox="0 0 {width} {_n(height)}" role="img" aria-label="{_e(title)}" '
        f'aria-describedby="{_e(ident)}-desc"><title>{_e(title)}</title>'
        f'<desc id="{_e(ident)}-desc">{_e(desc)}</desc>'
    )


def _empty(ident: str, title: str, desc: str, message: str, width: int) -> str:
    return (
        _open(ident, title, desc, width, 72)
        + f'<text class="empty" x="{width // 2}" y="42" text-anchor="middle" fill="{MUTED}">'
        f"{_e(message)}</text></svg>"
    )


def axis_top(peak: int) -> tuple[int, int]:
    """A round top for a count axis that must show `peak`, and the step of its <= 5 ticks."""
    if peak <= 0:
        return 1, 1
    raw = peak / 4
    magnitude = 10 ** max(0, math.floor(math.log10(raw)))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return math.ceil(peak / step) * step, step


def _legend(
    items: Sequence[tuple[str, str]], x0: float, y0: float, width: int
) -> tuple[str, float]:
    """Swatches in rows that wrap at the chart's width; the markup and its height."""
    x, y, parts = 0.0, 0.0, []
    for name, colour in items:
        label = _clip(name, 20)
        advance = 16 + len(label) * CHAR_PX + 18
        if x and x0 + x + advance > width - RIGHT:
            x, y = 0.0, y + 20
        parts.append(
            f'<g class="legend-item"><title>{_e(name)}</title>'
            f'<rect x="{_n(x0 + x)}" y="{_n(y0 + y)}" width="12" height="12" rx="2" '
            f'fill="{_e(colour)}"/><text x="{_n(x0 + x + 16)}" y="{_n(y0 + y + 10)}" '
            f'fill="{INK}">{_e(label)}</text></g>'
        )
        x += advance
    return '<g class="legend">' + "".join(parts) + "</g>", y + 20


def stacked_columns(
    *,
    ident: str,
    title: str,
    desc: str,
    labels: Sequence[str],
    series: Sequence[Series],
    unit: tuple[str, str],
    empty: str,
    width: int = WIDTH,
) -> str:
    """A column per label, its series stacked in order, a legend above and a value axis."""
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    if not any(totals):
        return _empty(ident, title, desc, empty, width)
    legend, legend_height = _legend([(s.name, s.colour) for s in series], LEFT, 8, width)
    plot_top, plot_height = 8 + legend_height + 10, 180.0
    base = plot_top + plot_height
    top, step = axis_top(max(totals))
    out = [_open(ident, title, desc, width, base + 28), legend]
    for tick in range(0, top + 1, step):
        y = base - tick / top * plot_height
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{width - RIGHT}" y1="{_n(y)}" y2="{_n(y)}" '
            f'stroke="{GRID}"/><text class="tick" x="{LEFT - 6}" y="{_n(y + 4)}" '
            f'text-anchor="end" fill="{MUTED}">{tick}</text>'
        )
    slot = (width - LEFT - RIGHT) / len(labels)
    column = max(slot * 0.72, 1.0)
    for i, label in enumerate(labels):
        x, y = LEFT + i * slot + (slot - column) / 2, base
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            height = value / top * plot_height
            y -= height
            noun = unit[0] if value == 1 else unit[1]
            out.append(
                f'<rect class="bar" data-series="{_e(s.name)}" data-value="{value}" '
                f'x="{_n(x)}" y="{_n(y)}" width="{_n(column)}" height="{_n(height)}" '
                f'fill="{_e(s.colour)}"><title>{_e(s.name)}, {_e(label)}: {value} {_e(noun)}'
                "</title></rect>"
            )
    every = max(1, math.ceil(len(labels) * 52 / (width - LEFT - RIGHT)))
    for i in range(0, len(labels), every):
        x = LEFT + (i + 0.5) * slot
        out.append(
            f'<text class="day" x="{_n(x)}" y="{_n(base + 18)}" text-anchor="middle" '
            f'fill="{MUTED}">{_e(labels[i])}</text>'
        )
    out.append(
        f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{_n(base)}" y2="{_n(base)}" '
        f'stroke="{MUTED}"/></svg>'
    )
    return "".join(out)


def horizontal_bars(
    *,
    ident: str,
    title: str,
    desc: str,
    rows: Sequence[Bar],
    colour: str,
    empty: str,
    width: int = WIDTH,
) -> str:
    """A bar per row, as long as its value relative to the longest, its text after it."""
    if not rows:
        return _empty(ident, title, desc, empty, width)
    label_width, text_width, row_height = 140, 180, 28
    room = width - label_width - text_width - RIGHT
    longest = max((r.value for r in rows if r.value is not None), default=0.0)
    out = [_open(ident, title, desc, width, len(rows) * row_height + 12)]
    for i, row in enumerate(rows):
        y = 6 + i * row_height
        out.append(
            f'<text class="label" x="{label_width - 10}" y="{y + 18}" text-anchor="end" '
            f'fill="{INK}"><title>{_e(row.label)}</title>{_e(_clip(row.label, 16))}</text>'
        )
        length = 0.0
        if row.value is not None and longest > 0:
            length = row.value / longest * room
            out.append(
                f'<rect class="bar" data-value="{_e(row.value)}" x="{label_width}" y="{y + 4}" '
                f'width="{_n(length)}" height="{row_height - 8}" rx="2" fill="{_e(colour)}">'
                f"<title>{_e(row.label)}: {_e(row.text)}</title></rect>"
            )
        out.append(
            f'<text class="value" x="{_n(label_width + length + 8)}" y="{y + 18}" '
            f'fill="{INK if row.value is not None else MUTED}">{_e(row.text)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def gauges(
    *, ident: str, title: str, desc: str, rows: Sequence[Gauge], empty: str, width: int = WIDTH
) -> str:
    """Per pool: a track as long as its size, its peak and current leases on it, and a mark
    at the size it should have; every pool on one scale."""
    if not rows:
        return _empty(ident, title, desc, empty, width)
    key = [("numbers", TRACK), ("peak leased", PEAK), ("leased now", NOW), ("needed", TARGET)]
    legend, legend_height = _legend(key, 150, 8, width)
    label_width, text_width, row_height = 150, 170, 30
    room = width - label_width - text_width - RIGHT
    scale = max(max(r.size, r.peak, r.target) for r in rows) or 1
    top = 8 + legend_height + 4
    out = [_open(ident, title, desc, width, top + len(rows) * row_height + 6), legend]
    for i, row in enumerate(rows):
        y = top + i * row_height
        out.append(
            f'<g class="pool" data-pool="{_e(row.label)}"><title>{_e(row.label)}: '
            f"{_e(row.text)}</title>"
            f'<text class="label" x="{label_width - 10}" y="{y + 19}" text-anchor="end" '
            f'fill="{INK}">{_e(_clip(row.label, 20))}</text>'
        )
        for name, value, colour, inset in (
            ("track", row.size, TRACK, 3),
            ("peak", row.peak, PEAK, 3),
            ("current", row.current, NOW, 9),
        ):
            out.append(
                f'<rect class="{name}" data-value="{value}" x="{label_width}" '
                f'y="{y + inset}" width="{_n(value / scale * room)}" '
                f'height="{row_height - 2 * inset - 2}" fill="{colour}"/>'
            )
        mark = label_width + row.target / scale * room
        out.append(
            f'<line class="target" data-value="{row.target}" x1="{_n(mark)}" x2="{_n(mark)}" '
            f'y1="{y}" y2="{y + row_height - 2}" stroke="{TARGET}" stroke-width="2"/>'
            f'<text class="value" x="{label_width + room + 10}" y="{y + 19}" '
            f'fill="{INK}">{_e(row.text)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)
