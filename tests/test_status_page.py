"""The status page in a real browser (Debian's headless chromium, driven over DevTools by
tests.browser) against the real web app serving a fake view: rows, summary, channels, the
detail view behind a deep link, a phone's width, and what it says when the monitor fails."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import pytest

from keepalive.delivery.store import AlertRecord, ChannelOutcome
from keepalive.engine.snapshot import MonitorSnapshot
from tests.browser import CHROMIUM, Chromium, available
from tests.fakes.delivery_fixtures import make_alert
from tests.test_web import EVIL, AlertPathFailingView, FakeView, serving

pytestmark = [
    pytest.mark.browser,
    # CI installs chromium (.ci/run), so there a missing browser fails instead of skipping.
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

ROWS = "[...document.querySelectorAll('#target-rows tr.row')]"


@asynccontextmanager
async def page(
    view: Any, path: str = "/", width: int = 1280, height: int = 800, mobile: bool = False
) -> AsyncIterator[Chromium]:
    async with serving(view) as base, Chromium(width, height, mobile=mobile) as browser:
        await browser.open(base + path)
        yield browser
        assert browser.console_errors == []


def run(view: Any, scenario: Callable[[Chromium], Awaitable[None]], **where: Any) -> None:
    async def main() -> None:
        async with page(view, **where) as browser:
            await scenario(browser)

    asyncio.run(main())


async def rows_shown(browser: Chromium, count: int) -> list[dict[str, Any]]:
    """Each row on screen once ``count`` are: target, classes and each cell's text by label."""
    await browser.wait_for(f"{ROWS}.length === {count}", what=f"{count} rows")
    rows: list[dict[str, Any]] = await browser.evaluate(
        f"""{ROWS}.map((tr) => ({{
            target: tr.dataset.target,
            classes: tr.className,
            cells: Object.fromEntries([...tr.cells].map((td) => [td.dataset.label, td.textContent])),
        }}))"""
    )
    return rows


def test_each_target_is_a_row_with_its_state_problems_first() -> None:
    async def scenario(browser: Chromium) -> None:
        down, up = await rows_shown(browser, 2)
        # Problems first: the down target leads although the view lists it second.
        assert (down["target"], down["classes"]) == ("billing", "row down")
        assert down["cells"]["State"].startswith("downfor ")
        assert down["cells"]["Target"] == "billinghttp://127.0.0.1:8081/health"
        assert down["cells"]["Latency"] == "–"
        assert down["cells"]["Reason"] == "connection refused5 failures in a row"
        assert down["cells"]["Uptime"] == "83.33 %"
        assert down["cells"]["Last check"].endswith(" ago")
        assert (up["target"], up["classes"]) == (EVIL, "row up")
        assert up["cells"]["Latency"] == "13 ms"
        assert up["cells"]["Uptime"] == "98.30 %"
        assert await browser.evaluate("document.getElementById('shown').textContent") == "2 targets"

    run(FakeView(), scenario)


def test_a_hostile_target_name_is_shown_as_text_and_never_run() -> None:
    async def scenario(browser: Chromium) -> None:
        await rows_shown(browser, 2)
        name = await browser.evaluate(
            f"document.querySelector('tr[data-target=\"{EVIL}\"] a.name').textContent"
        )
        assert name == EVIL
        assert await browser.evaluate("document.querySelectorAll('script').length") == 1
        assert (
            await browser.evaluate("document.querySelector('script').getAttribute('src')")
            == "static/status.js"
        )

    run(FakeView(), scenario)


def test_the_summary_counts_targets_and_shows_the_monitor() -> None:
    async def scenario(browser: Chromium) -> None:
        await rows_shown(browser, 2)
        text = await browser.evaluate(
            """Object.fromEntries(['count-up', 'count-failing', 'count-down', 'count-unknown',
                'outbox-depth', 'outbox-label', 'monitor-status', 'monitor-meta', 'connection']
                .map((id) => [id, document.getElementById(id).textContent]))"""
        )
        assert text == {
            "count-up": "1",
            "count-failing": "0",
            "count-down": "1",
            "count-unknown": "0",
            "outbox-depth": "2",
            "outbox-label": "alerts queued, oldest 42 s",
            "monitor-status": "monitor ok",
            "monitor-meta": "test-host · version 1.0.0 · running 1 h · 240 checks, 3 missed · schedule lag p99 12 ms",
            "connection": "live",
        }
        assert await browser.evaluate("document.getElementById('banner').hidden") is True
        assert await browser.evaluate("document.title") == "1 down · Keep-Alive Monitor"

    run(FakeView(), scenario)


class HoldingView(FakeView):
    """Three targets' alerts held (silences, a window, a parent down), one in maintenance."""

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        return dataclasses.replace(
            super().snapshot(include_history), targets_held=3, targets_in_maintenance=1
        )


def test_the_summary_counts_held_targets_and_those_in_maintenance() -> None:
    async def scenario(browser: Chromium) -> None:
        await rows_shown(browser, 2)  # the state tiles are counted when the rows are drawn
        await browser.wait_for("!!document.getElementById('count-targets_held')", what="the held tile")
        tiles = await browser.evaluate(
            """[...document.querySelectorAll('#summary .tile')].map((tile) =>
                tile.querySelector('.count').textContent + ' ' + tile.querySelector('.label').textContent)"""
        )
        assert tiles == [
            "1 up",
            "0 failing",
            "1 down",
            "0 unknown",
            "3 held",
            "1 in maintenance",
            "2 alerts queued, oldest 42 s",
        ]

    run(HoldingView(), scenario)


def test_a_summary_tile_filters_the_list_by_its_state() -> None:
    async def scenario(browser: Chromium) -> None:
        await rows_shown(browser, 2)
        await browser.evaluate("document.querySelector('button.tile.up').click()")
        (only,) = await rows_shown(browser, 1)
        assert only["target"] == EVIL
        assert (
            await browser.evaluate("document.querySelector('button.tile.up').getAttribute('aria-pressed')")
            == "true"
        )
        assert (
            await browser.evaluate("document.getElementById('shown').textContent") == "1 of 2 targets shown"
        )
        await browser.evaluate("document.querySelector('button.tile.up').click()")
        await rows_shown(browser, 2)

    run(FakeView(), scenario)


def test_channels_show_state_last_success_and_last_error() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("document.querySelectorAll('#channel-rows tr').length === 3")
        rows = await browser.evaluate(
            """[...document.querySelectorAll('#channel-rows tr')].map((tr) => [tr.dataset.channel, tr.className,
                Object.fromEntries([...tr.cells].map((td) => [td.dataset.label, td.textContent]))])"""
        )
        assert [row[0] for row in rows] == ["log", "telegram", "email"]
        telegram, email = rows[1][2], rows[2]
        assert telegram["Status"] == "on"
        assert telegram["Last error"].startswith("HTTP 502 Bad Gateway")
        assert telegram["Sent / failed"] == "3 / 7"
        assert email[1] == "off"
        assert email[2]["Channel"] == "emailSMTP_SERVER is not set"
        assert email[2]["Last success"] == "never"
        assert email[2]["Last error"] == "none"

    run(FakeView(), scenario)


def test_a_deep_link_opens_the_targets_detail_with_its_history_chart() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!!document.querySelector('#detail-facts dd')", what="the detail")
        assert await browser.evaluate("document.getElementById('detail').hidden") is False
        assert await browser.evaluate("document.getElementById('detail-name').textContent") == "billing"
        assert await browser.evaluate("document.activeElement.id") == "detail-name"
        facts = await browser.evaluate(
            """Object.fromEntries([...document.querySelectorAll('#detail-facts dt')]
                .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))"""
        )
        assert facts["Last reason"] == "connection refused"
        assert facts["Failures in a row"] == "5"
        assert facts["Checks"] == "100 ok, 20 failed"
        # Three failed checks as red bars; the two good ones before the outage as one line.
        assert await browser.evaluate("document.querySelectorAll('#detail-chart rect.fail').length") == 3
        points = await browser.evaluate(
            "document.querySelector('#detail-chart polyline').getAttribute('points')"
        )
        assert len(points.split()) == 2
        assert await browser.evaluate("document.getElementById('detail-no-changes').hidden") is False
        # Back to the list: the address loses its ?target= and the detail closes.
        await browser.evaluate("document.getElementById('detail-close').click()")
        await browser.wait_for("document.getElementById('detail').hidden")
        assert await browser.evaluate("location.search") == ""

    run(FakeView(), scenario, path="/?target=billing")


class AlertsView(FakeView):
    """billing has one alert delivered on Telegram and still retrying by e-mail."""

    def recent_alerts(self, name: str) -> list[AlertRecord]:
        if name != "billing":
            return []
        down = make_alert("billing", reason=EVIL)
        return [
            AlertRecord(
                down,
                down.at,
                (
                    ChannelOutcome("email", 0, 1, 0, 3, down.at + 120, "connection refused", None),
                    ChannelOutcome("telegram", 2, 0, 0, 1, None, None, down.at + 1),
                ),
            )
        ]


def test_the_detail_says_what_became_of_each_alert_channel_by_channel() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!!document.querySelector('#detail-alert-rows tr')", what="the alerts")
        cells = await browser.evaluate(
            "[...document.querySelector('#detail-alert-rows tr').cells].map((td) => td.textContent)"
        )
        assert cells[1] == "DOWN" + EVIL  # the reason as text
        lines = await browser.evaluate(
            "[...document.querySelectorAll('#detail-alert-rows li')].map((li) => [li.className, li.textContent])"
        )
        assert lines == [
            ["pending", "email: 1 retrying (attempt 3: connection refused)"],
            ["sent", "telegram: 2 sent"],
        ]
        assert await browser.evaluate("document.querySelector('#detail-alert-rows tr.undelivered') !== null")
        assert await browser.evaluate("document.getElementById('detail-no-alerts').hidden") is True
        assert await browser.evaluate("document.querySelectorAll('#detail-alert-rows script').length") == 0

    run(AlertsView(), scenario, path="/?target=billing")


def test_a_target_without_alerts_says_so_in_its_detail() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!!document.querySelector('#detail-facts dd')", what="the detail")
        assert await browser.evaluate("document.getElementById('detail-alerts').hidden") is True
        text = await browser.evaluate("document.getElementById('detail-no-alerts').textContent")
        assert text == "No alert of this target in the outbox."

    run(AlertsView(), scenario, path="/?target=" + quote(EVIL))  # the other target


def test_clicking_a_target_opens_its_detail_and_back_closes_it() -> None:
    async def scenario(browser: Chromium) -> None:
        await rows_shown(browser, 2)
        await browser.evaluate(f"document.querySelector('tr[data-target=\"{EVIL}\"] a.name').click()")
        await browser.wait_for("!!document.querySelector('#detail-facts dd')", what="the detail")
        assert await browser.evaluate("document.getElementById('detail-name').textContent") == EVIL
        assert await browser.evaluate("new URLSearchParams(location.search).get('target')") == EVIL
        await browser.evaluate("history.back()")
        await browser.wait_for("document.getElementById('detail').hidden", what="the detail closed")

    run(FakeView(), scenario)


def test_a_deep_link_to_an_unknown_target_says_so() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!document.getElementById('detail-error').hidden", what="the error")
        assert (
            await browser.evaluate("document.getElementById('detail-error').textContent")
            == 'No target named "gone" is checked by this monitor.'
        )

    run(FakeView(), scenario, path="/?target=gone")


def test_on_a_phone_rows_are_cards_and_nothing_scrolls_sideways() -> None:
    async def scenario(browser: Chromium) -> None:
        await rows_shown(browser, 2)
        assert await browser.evaluate("getComputedStyle(document.querySelector('tr.row')).display") == "grid"
        assert (
            await browser.evaluate("getComputedStyle(document.querySelector('#targets thead')).display")
            == "none"
        )
        assert await browser.evaluate("document.documentElement.scrollWidth") <= 390
        height = await browser.evaluate("document.querySelector('tr.row').getBoundingClientRect().height")
        assert height == 88  # --row-h 96 px less the 8 px gap: every card the same

    run(FakeView(), scenario, width=390, height=800, mobile=True)


class BrokenView(FakeView):
    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        raise RuntimeError("the core is broken")


def test_it_says_connection_lost_when_the_monitor_does_not_answer() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!document.getElementById('banner').hidden", what="the banner")
        text = await browser.evaluate("document.getElementById('banner-text').textContent")
        assert text == "Connection lost: the monitor answered HTTP 500."
        assert await browser.evaluate("document.body.classList.contains('stale')") is True

    async def main() -> None:
        async with serving(BrokenView()) as base, Chromium() as browser:
            await browser.open(base + "/")
            await scenario(browser)

    asyncio.run(main())


def test_an_unhealthy_monitor_says_why_on_its_badge() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("document.getElementById('monitor-status').textContent !== 'loading'")
        badge = await browser.evaluate(
            "(({className, textContent, title}) => ({className, textContent, title}))"
            "(document.getElementById('monitor-status'))"
        )
        assert badge == {
            "className": "badge stalled",
            "textContent": "monitor alert path failing",
            "title": AlertPathFailingView.PROBLEM,
        }

    run(AlertPathFailingView(), scenario)
