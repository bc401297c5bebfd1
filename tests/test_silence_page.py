"""The page shows held targets (SPEC 13) in a real browser: the row says "held" with who, why
and until on hover, the detail view says it in words with the downtime split, and the monitor
line counts the held targets."""

from __future__ import annotations

import dataclasses

import pytest

from keepalive.engine.snapshot import MonitorSnapshot, SilenceSnapshot
from tests.browser import CHROMIUM, Chromium, available
from tests.test_status_page import run
from tests.test_web import FakeView

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

WHY = "silence 3f2a9c1e (disk swap) by alice@ops until 2026-01-02T05:00Z"


class HeldView(FakeView):
    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        snap = super().snapshot(include_history)
        targets = tuple(
            dataclasses.replace(
                t,
                silenced_by=WHY,
                held_until=1767330000.0,
                held_alert=True,
                downtime_seconds=3600.0,
                downtime_in_maintenance_seconds=1800.0,
                downtime_held_by_dependency_seconds=600.0,
            )
            if t.name == "billing"
            else t
            for t in snap.targets
        )
        return dataclasses.replace(snap, targets=targets, targets_held=1)


def test_a_held_row_says_held_with_who_why_and_until_on_hover() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for(
            "!!document.querySelector('tr[data-target=\"billing\"] .held')", what="the row"
        )
        line = await browser.evaluate(
            "document.querySelector('tr[data-target=\"billing\"] .held').parentElement.title"
        )
        assert line.startswith(WHY + " (until ") and line.endswith("; a DOWN waits for the hold to end")
        others = await browser.evaluate("document.querySelectorAll('tr.row .held').length")
        assert others == 1
        meta = await browser.evaluate("document.getElementById('monitor-meta').textContent")
        assert "1 held" in meta

    run(HeldView(), scenario)


def test_the_detail_view_says_why_it_is_held_and_how_much_downtime_was_planned() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!!document.querySelector('#detail-facts dd')", what="the detail")
        facts = await browser.evaluate(
            """Object.fromEntries([...document.querySelectorAll('#detail-facts dt')]
                .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))"""
        )
        assert facts["Notifications held"].startswith(WHY + " (until ")
        assert (
            facts["Downtime recorded"]
            == "1 h, of it 30 min in maintenance, 10 min while a dependency was down"
        )

    run(HeldView(), scenario, path="/?target=billing")


EVIL = "<img src=x onerror=alert(1)>"


class SilencedView(FakeView):
    """Two active silences, one of them with markup in its comment."""

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        snap = super().snapshot(include_history)
        silences = (
            SilenceSnapshot("3f2a9c1e77aa0b12", ("db-*", "cache"), snap.taken_at - 60, snap.taken_at + 5400,
                            "disk swap", "alice@ops"),
            SilenceSnapshot("9b1d00c3ee45f6a7", ("billing",), snap.taken_at - 10, snap.taken_at + 120,
                            EVIL, "bot:42"),
            # Scheduled: it starts in a week (made with ``starts_at`` over the API).
            SilenceSnapshot("c0ffee00aa11bb22", ("web",), snap.taken_at + 7 * 86400 + 1800,
                            snap.taken_at + 7 * 86400 + 3600, "planned move", "carol"),
        )  # fmt: skip
        return dataclasses.replace(snap, silences=silences)


def test_the_page_lists_the_active_silences_with_who_why_and_when_they_end() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for(
            "document.querySelectorAll('#silence-rows tr').length === 3", what="the silences"
        )
        rows = await browser.evaluate(
            """[...document.querySelectorAll('#silence-rows tr')].map((tr) =>
                [...tr.cells].map((td) => td.textContent))"""
        )
        assert rows[0][:2] == ["3f2a9c1e", "db-*, cache"]
        assert rows[0][2].startswith("in 1 h 29 min") or rows[0][2].startswith("in 1 h 30 min")
        assert rows[0][3:] == ["alice@ops", "disk swap"]
        assert rows[1][0] == "9b1d00c3" and rows[1][4] == EVIL  # shown as text, never as markup
        assert rows[2][:3] == ["c0ffee00", "web", "starts in 7 d"]  # scheduled, not active yet
        assert await browser.evaluate("document.querySelectorAll('#silence-rows img').length") == 0
        assert await browser.evaluate("document.getElementById('no-silences').hidden") is True

    run(SilencedView(), scenario)


def test_without_a_silence_the_page_says_so() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!!document.querySelector('tr.row')", what="the rows")
        assert await browser.evaluate("document.getElementById('silences').hidden") is True
        text = await browser.evaluate("document.getElementById('no-silences').textContent")
        hidden = await browser.evaluate("document.getElementById('no-silences').hidden")
        assert (text, hidden) == ("No silence.", False)

    run(FakeView(), scenario)
