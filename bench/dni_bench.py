"""What dni.js costs the page it runs on, measured in Debian's Chromium.

The snippet is inlined into generated pages of N text nodes (1% print the business number
in one of several formats, 1% are tel: links), so the script's own work is timed without
any network. Three figures per page size, each the median over fresh page loads:

- `start_ms`: executing the snippet when a live lease is already stored (a reload), which
  includes swapping every place on the page synchronously; against the same page with
  nothing stored (no swap: the first visit, whose swap follows the service's answer) and
  against an empty script.
- `rescan_ms`: `CallTrack.scan(document.body)` over the swapped page (what a route change
  costs).
- `append_ms`: appending 1,000 nodes that print the number and letting the
  MutationObserver swap them, against the same append without the snippet.

python -m bench.dni_bench [--sizes 1000,10000,50000] [--loads 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Route, async_playwright

from app.assets import compact_js
from bench.common import keep_result, log, median, wait_calm

ROOT = Path(__file__).resolve().parents[1]
# As served (compacted); inlined, so its header's example tag must not close the script.
SCRIPT = (
    compact_js((ROOT / "app" / "static" / "dni.js").read_bytes()).decode().replace("</", "<\\/")
)
CHROMIUM = os.environ.get("CALLTRACK_CHROMIUM", "/usr/bin/chromium")
ORIGIN = "http://shop.bench"
FORMATS = ["(212) 555-0100", "212.555.0100", "+1 212 555 0100", "212-555-0100"]
APPEND = 1000


def page_html(size: int, *, snippet: bool) -> str:
    """A page of `size` text nodes; timing marks around the inlined snippet."""
    rows = []
    for i in range(size):
        if i % 100 == 0:
            rows.append(f"<p>Call us on {FORMATS[(i // 100) % len(FORMATS)]} today</p>")
        elif i % 100 == 50:
            rows.append('<p><a href="tel:+12125550100">call</a></p>')
        else:
            rows.append(f"<p>Line {i}: nothing to see, order #{i * 7919 % 100000}</p>")
    # The marks sit inside the snippet's own <script>: between two scripts the parser may
    # yield and the browser lay out and paint the page, which is not the snippet's cost.
    code = SCRIPT if snippet else ""
    tag = (
        f'<script data-endpoint="{ORIGIN}" data-pool="default" data-numbers="+12125550100">'
        f"window.t0 = performance.now();\n{code}\nwindow.t1 = performance.now();</script>"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">'
        "</head><body>" + "".join(rows) + tag + "</body></html>"
    )


APPEND_JS = """async (count) => {
  const box = document.createElement("div");
  document.body.appendChild(box);
  await new Promise((done) => setTimeout(done, 0));
  const t = performance.now();
  for (let i = 0; i < count; i++) {
    const p = document.createElement("p");
    p.textContent = "Late: call (212) 555-0100 now";
    box.appendChild(p);
  }
  await Promise.resolve();  // the observer's callback runs in this microtask checkpoint
  return performance.now() - t;
}"""


async def one_load(browser: Browser, size: int, variant: str) -> dict[str, float]:
    """Load the page once: `stored` (a live lease in storage), `fresh` or `none`."""
    context = await browser.new_context()
    page = await context.new_page()
    html = page_html(size, snippet=variant != "none")

    async def serve(route: Route) -> None:
        if route.request.url.endswith("/get_tracking_number"):
            # No service: only the stored lease is swapped, and the snippet's failure path
            # (keep the page as it is, retry in 5 s) runs after the measurement.
            await route.abort()
            return
        await route.fulfill(status=200, content_type="text/html", body=html)

    await page.route("**/*", serve)
    if variant == "stored":
        expires = int((time.time() + 600) * 1000)
        state = {"sid": "bench-session-0000", "num": "12565550101", "exp": expires}
        state["seen"] = int(time.time() * 1000)
        await context.add_init_script(
            f"localStorage.setItem('calltrack:default', {json.dumps(json.dumps(state))});"
        )
    await page.goto(ORIGIN + "/", wait_until="load")
    result = {"start_ms": await page.evaluate("window.t1 - window.t0")}
    if variant == "stored":
        assert await page.evaluate("CallTrack.number()") == "+12565550101"
        result["rescan_ms"] = await page.evaluate(
            "() => { const t = performance.now(); CallTrack.scan(document.body);"
            " return performance.now() - t; }"
        )
    result["append_ms"] = await page.evaluate(APPEND_JS, APPEND)
    if variant == "stored":
        late = await page.evaluate("document.body.lastElementChild.lastElementChild.textContent")
        assert late == "Late: call (256) 555-0101 now", late
    await context.close()
    return result


async def run(sizes: list[int], loads: int) -> dict[str, Any]:
    """Every size and variant, `loads` fresh pages each, interleaved."""
    results: dict[str, Any] = {}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-background-networking"],
        )
        try:
            for size in sizes:
                samples: dict[str, list[dict[str, float]]] = {
                    "stored": [],
                    "fresh": [],
                    "none": [],
                }
                for _ in range(loads):
                    for variant in samples:  # interleaved, so drift hits all alike
                        samples[variant].append(await one_load(browser, size, variant))
                row: dict[str, Any] = {}
                for variant, runs in samples.items():
                    for key in runs[0]:
                        row[f"{variant}.{key}"] = round(median([r[key] for r in runs]), 2)
                results[str(size)] = row
                log(f"{size} nodes: {row}")
        finally:
            await browser.close()
    return results


def main() -> None:
    """Parse arguments, wait for a calm machine, measure, print and keep the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--loads", type=int, default=7)
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--calm-wait", type=float, default=120.0)
    args = parser.parse_args()
    calm = wait_calm(args.max_load, args.calm_wait, pause=1.0)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = asyncio.run(run(sizes, args.loads))
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True)
    record = {
        "chromium": chromium.stdout.strip(),
        "loads": args.loads,
        "append": APPEND,
        "calm": calm,
        "results": results,
    }
    keep_result("dni", record)


if __name__ == "__main__":
    main()
