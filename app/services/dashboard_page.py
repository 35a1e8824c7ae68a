"""The dashboard page: summary, four charts and the latest calls, as one HTML string."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlencode

from app.services import charts
from app.services.dashboard import Figures, LatestCall, PoolUse, SourceSeries
from app.services.dashboard_views import document, e

DAY_CHOICES = (1, 7, 14, 30, 90, 365)
MAX_CAMPAIGNS = 12
# Chart widths in SVG units near the panels' widths in CSS pixels, so text keeps its size.
WIDE, HALF = 1100, 520
NO_CALLS = "No calls in this window"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _money(amount: Decimal | None, currency: str | None) -> str:
    return "\u2014" if amount is None else f"{amount:,.2f} {currency or ''}".strip()


def _source_name(series: SourceSeries) -> str:
    return "other" if series.other else series.source or "(no source)"


def _talk(seconds: int | None) -> str:
    return "\u2014" if seconds is None else f"{seconds // 60}:{seconds % 60:02d}"


def _href(fig: Figures, **changes: object) -> str:
    query: dict[str, object] = {"days": fig.window.days, "tz": fig.window.tz}
    return "/dashboard?" + urlencode({**query, **changes})


def _header(fig: Figures) -> str:
    days = sorted({*DAY_CHOICES, fig.window.days})
    options = "".join(
        f'<option value="{d}"{" selected" if d == fig.window.days else ""}>'
        f"{_plural(d, 'day')}</option>"
        for d in days
    )
    keep = (
        f'<input type="hidden" name="currency" value="{e(fig.currency)}">'
        if fig.other_currencies and fig.currency
        else ""
    )
    return (
        '<header class="top"><h1><span class="brand">calltrack</span> dashboard</h1>'
        '<form class="window" method="get" action="/dashboard">'
        f'<label>Window <select name="days">{options}</select></label>'
        f'<label>Time zone <input name="tz" value="{e(fig.window.tz)}" maxlength="64" '
        f'size="18"></label>{keep}<button type="submit">Show</button></form>'
        '<form class="logout" method="post" action="/dashboard/logout">'
        '<button type="submit" class="quiet">Sign out</button></form></header>'
    )


def _tiles(fig: Figures) -> str:
    answered = sum(fig.answered)
    share = f"{answered * 100 // fig.calls}% answered" if fig.calls else "no calls"
    tiles = (
        ("Calls", f"{fig.calls:,}", f"{fig.window.first:%d %b} \u2013 {fig.window.last:%d %b}"),
        ("Answered", f"{answered:,}", share),
        ("Spend", _money(fig.spend, fig.currency), "media spend imported"),
        ("Cost per call", _money(fig.cost_per_call, fig.currency), "spend / calls"),
    )
    return (
        '<section class="tiles">'
        + "".join(
            f'<div class="tile"><span class="muted">{e(name)}</span><strong>{e(value)}</strong>'
            f'<span class="muted">{e(note)}</span></div>'
            for name, value, note in tiles
        )
        + "</section>"
    )


def _by_source(fig: Figures, labels: Sequence[str]) -> str:
    series = [
        charts.Series(_source_name(s), charts.OTHER if s.other else charts.PALETTE[i], s.calls)
        for i, s in enumerate(fig.sources)
    ]
    shares = ", ".join(f"{x.name} {sum(x.values)}" for x in series) or "none"
    return charts.stacked_columns(
        ident="chart-sources",
        title="Calls by source per day",
        desc=f"Calls per day in {fig.window.tz}, stacked by source. Totals: {shares}.",
        labels=labels,
        series=series,
        unit=("call", "calls"),
        empty=NO_CALLS,
        width=WIDE,
    )


def _campaign_text(row_calls: int, cost: Decimal | None, spend: Decimal | None, cur: str) -> str:
    if cost is not None:
        return f"{_money(cost, cur)} per call \u00b7 {_plural(row_calls, 'call')}"
    if spend:
        return f"no calls \u00b7 {_money(spend, cur)} spent"
    return f"no spend \u00b7 {_plural(row_calls, 'call')}"


def _campaigns(fig: Figures) -> str:
    cur = fig.currency or ""
    shown = fig.campaigns[:MAX_CAMPAIGNS]
    bars = [
        charts.Bar(
            label=row.campaign or "(no campaign)",
            value=float(row.cost_per_call) if row.cost_per_call is not None else None,
            text=_campaign_text(row.calls, row.cost_per_call, row.spend, cur),
        )
        for row in shown
    ]
    chart = charts.horizontal_bars(
        ident="chart-campaigns",
        title="Cost per call by campaign",
        desc="Spend divided by calls per campaign; "
        + "; ".join(f"{b.label}: {b.text}" for b in bars),
        rows=bars,
        colour=charts.PALETTE[0],
        empty="No calls or spend in this window",
        width=HALF,
    )
    more = len(fig.campaigns) - len(shown)
    notes = f'<p class="muted">and {_plural(more, "more campaign")}</p>' if more > 0 else ""
    if fig.other_currencies:
        links = ", ".join(
            f'<a href="{e(_href(fig, currency=c))}">{e(c)}</a>' for c in fig.other_currencies
        )
        notes += f'<p class="muted">Spend in {e(cur)}; also imported in {links}.</p>'
    return chart + notes


def _answered(fig: Figures, labels: Sequence[str]) -> str:
    answered, missed = sum(fig.answered), sum(fig.missed)
    chart = charts.stacked_columns(
        ident="chart-answered",
        title="Answered and missed calls per day",
        desc=f"{answered} answered and {missed} missed calls in {fig.window.tz} days.",
        labels=labels,
        series=[
            charts.Series("answered", "#59a14f", fig.answered),
            charts.Series("missed", "#e15759", fig.missed),
        ],
        unit=("call", "calls"),
        empty=NO_CALLS,
        width=HALF,
    )
    return (
        f'<p class="totals"><strong>{answered:,}</strong> answered \u00b7 '
        f"<strong>{missed:,}</strong> missed</p>{chart}"
    )


def _pool_row(p: PoolUse) -> str:
    cells = (p.size, p.leased_now, p.peak, p.leases_started, p.recommended, p.fallbacks)
    return f"<tr><th>{e(p.name)}</th>" + "".join(f"<td>{c:,}</td>" for c in cells) + "</tr>"


def _pools(fig: Figures) -> str:
    chart = charts.gauges(
        ident="chart-pools",
        title="Pool utilisation",
        desc="Per pool: numbers, numbers leased now, most leased at once in the window, "
        "and the size the traffic needs.",
        rows=[
            charts.Gauge(
                label=p.name,
                size=p.size,
                peak=p.peak,
                current=p.leased_now,
                target=p.recommended,
                text=f"{p.leased_now}/{p.size} now \u00b7 peak {p.peak}",
            )
            for p in fig.pools
        ],
        empty="No pools yet",
        width=WIDE,
    )
    if not fig.pools:
        return chart
    head = "".join(
        f"<th>{h}</th>"
        for h in ("Pool", "Numbers", "Leased now", "Peak", "Leases", "Needed", "Fallbacks")
    )
    body = "".join(_pool_row(p) for p in fig.pools)
    table = f'<table class="pools"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return chart + table


def _call_row(call: LatestCall) -> str:
    cells = (
        f"{call.started:%d %b %H:%M}",
        call.tracking_number,
        call.caller,
        call.source or "\u2014",
        call.medium or "\u2014",
        call.campaign or "\u2014",
        call.status,
        "answered" if call.answered else "missed",
        _talk(call.talk_seconds),
        call.attribution,
    )
    return "<tr>" + "".join(f"<td>{e(c)}</td>" for c in cells) + "</tr>"


def _latest(fig: Figures) -> str:
    if not fig.latest:
        return f'<p class="empty muted">{NO_CALLS}</p>'
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "Started",
            "Tracking number",
            "Caller",
            "Source",
            "Medium",
            "Campaign",
            "Status",
            "Outcome",
            "Talk",
            "Attribution",
        )
    )
    body = "".join(_call_row(c) for c in fig.latest)
    return (
        '<div class="scroll"><table class="calls">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def _panel(ident: str, title: str, content: str, wide: bool = False) -> str:
    return (
        f'<section class="panel{" wide" if wide else ""}" id="{ident}" aria-labelledby="'
        f'{ident}-h"><h2 id="{ident}-h">{e(title)}</h2>{content}</section>'
    )


def page(fig: Figures, *, stylesheet: str, generated: datetime) -> str:
    """The whole dashboard."""
    labels = [f"{d.day} {d:%b}" for d in fig.window.dates]
    body = (
        _header(fig)
        + _tiles(fig)
        + '<div class="grid">'
        + _panel("p-sources", "Calls by source", _by_source(fig, labels), wide=True)
        + _panel("p-campaigns", "Cost per call by campaign", _campaigns(fig))
        + _panel("p-answered", "Answered versus missed", _answered(fig, labels))
        + _panel("p-pools", "Pool utilisation", _pools(fig), wide=True)
        + _panel("p-latest", "Latest calls", _latest(fig), wide=True)
        + "</div>"
        + f'<footer class="muted">Days in {e(fig.window.tz)}, {fig.window.first.isoformat()} '
        f"to {fig.window.last.isoformat()}; pool figures since the first day began. "
        f"Generated {generated:%Y-%m-%d %H:%M %Z}.</footer>"
    )
    return document(title="calltrack dashboard", stylesheet=stylesheet, body=body)
