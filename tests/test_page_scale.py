"""The page at 5,000 targets in chromium: only the rows on screen are in the DOM (scrolled to
the top or the bottom), and the name and state filters and the sort work over all of them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.browser import CHROMIUM, Chromium, available
from tests.test_web import EVIL, UNKNOWN_TARGET, FakeView, serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

COUNT = 5_000
HEIGHT = 800
ROW_HEIGHT = 52  # --row-h in status.css
OVERSCAN = 8  # status.js
# Rows on screen plus the overscan either side, plus the two spacer rows.
MOST_IN_DOM = math.ceil(HEIGHT / ROW_HEIGHT) + 2 * OVERSCAN + 2


def generated(i: int) -> dict[str, Any]:
    state = "down" if i % 7 == 0 else "failing" if i % 11 == 0 else "up"
    return {
        **UNKNOWN_TARGET,
        "name": f"t-{i:05d}",
        "url": f"http://10.0.{i // 250}.{i % 250}/health",
        "state": state,
        "last_check": "2026-01-02T03:00:00.000Z",
        "last_latency_ms": None if state != "up" else float(i % 500),
        "last_reason": None if state == "up" else "connection refused",
        "since": "2026-01-02T02:00:00.000Z",
        "history": [],
    }


TARGETS = tuple(generated(i) for i in range(COUNT))
TOTAL = COUNT + 2  # and FakeView's own two
DOWN = sum(t["state"] == "down" for t in TARGETS) + 1  # billing


def run(scenario: Callable[[Chromium], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving(FakeView(extra_targets=TARGETS)) as base, Chromium(1280, HEIGHT) as browser:
            await browser.open(base + "/")
            await browser.wait_for(
                f"document.getElementById('shown').textContent === '{TOTAL} targets'", what="the list"
            )
            await scenario(browser)
            assert browser.console_errors == []

    asyncio.run(main())


async def dom_rows(browser: Chromium) -> dict[str, Any]:
    # After the next frame: the page redraws on scroll and input in requestAnimationFrame.
    await browser.evaluate("new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
    result: dict[str, Any] = await browser.evaluate(
        """(() => {
            const rows = [...document.querySelectorAll('#target-rows tr.row')];
            return {
                inDom: document.querySelectorAll('#target-rows tr').length,
                names: rows.map((tr) => tr.dataset.target),
                classes: rows.map((tr) => tr.className),
                indexes: rows.map((tr) => Number(tr.getAttribute('aria-rowindex'))),
                rowCount: Number(document.getElementById('targets').getAttribute('aria-rowcount')),
                shown: document.getElementById('shown').textContent,
                height: document.getElementById('target-rows').getBoundingClientRect().height,
                rowHeights: [...new Set(rows.map((tr) => tr.getBoundingClientRect().height))],
            };
        })()"""
    )
    return result


def test_only_the_rows_on_screen_are_in_the_dom_at_the_top_and_the_bottom() -> None:
    async def scenario(browser: Chromium) -> None:
        top = await dom_rows(browser)
        assert len(top["names"]) >= 17 and top["inDom"] <= MOST_IN_DOM
        assert top["rowCount"] == TOTAL + 1
        # Every row equally tall, whatever it shows (the spacers' sums rely on it) ...
        assert top["rowHeights"] == [ROW_HEIGHT]
        # ... and the spacers stand in for the rest: the list is as tall as all its rows.
        assert top["height"] == TOTAL * ROW_HEIGHT
        # Problems first: every down target before any other.
        assert top["classes"][0] == "row down" and top["indexes"][0] == 2

        await browser.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        bottom = await dom_rows(browser)
        assert bottom["inDom"] <= MOST_IN_DOM
        assert bottom["rowHeights"] == [ROW_HEIGHT]
        assert bottom["indexes"][-1] == TOTAL + 1  # the very last row
        assert bottom["indexes"] == list(range(bottom["indexes"][0], TOTAL + 2))
        assert not set(bottom["names"]) & set(top["names"])

    run(scenario)


def test_the_name_filter_searches_every_target() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.evaluate(
            "(() => { const f = document.getElementById('filter'); f.value = 'T-012';"
            " f.dispatchEvent(new Event('input')); })()"
        )
        wanted = sorted(t["name"] for t in TARGETS if "t-012" in t["name"])
        await browser.wait_for(
            f"document.getElementById('shown').textContent === '{len(wanted)} of {TOTAL} targets shown'"
        )
        shown = await dom_rows(browser)
        assert len(wanted) == 100 and shown["inDom"] <= MOST_IN_DOM
        assert all(name.startswith("t-012") for name in shown["names"])

    run(scenario)


def test_the_state_filter_and_the_sort_by_name() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.evaluate(
            "(() => { const s = document.getElementById('state-filter'); s.value = 'down';"
            " s.dispatchEvent(new Event('change')); })()"
        )
        await browser.wait_for(
            f"document.getElementById('shown').textContent === '{DOWN} of {TOTAL} targets shown'"
        )
        down = await dom_rows(browser)
        assert set(down["classes"]) == {"row down"}
        assert (
            await browser.evaluate("document.querySelector('button.tile.down').getAttribute('aria-pressed')")
            == "true"
        )

        await browser.evaluate(
            "(() => { const s = document.getElementById('state-filter'); s.value = '';"
            " s.dispatchEvent(new Event('change'));"
            " const o = document.getElementById('sort'); o.value = 'name';"
            " o.dispatchEvent(new Event('change')); })()"
        )
        await browser.wait_for(f"document.getElementById('shown').textContent === '{TOTAL} targets'")
        by_name = await dom_rows(browser)
        assert by_name["names"][:3] == [EVIL, "billing", "t-00000"]

    run(scenario)
