"""The page's detail view shows a target's last remediation (SPEC 15) in a real browser:
the summary, who started it, and its last output lines as text (never markup)."""

from __future__ import annotations

import dataclasses

import pytest

from keepalive.actions.result import RemediationResult
from keepalive.engine.snapshot import MonitorSnapshot
from tests.browser import CHROMIUM, Chromium, available
from tests.test_status_page import run
from tests.test_web import FakeView

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

RUN = RemediationResult(
    target="billing",
    command="systemctl restart billing",
    trigger="monitor",
    started_at=1767322790.0,
    duration=1.23,
    outcome="exited",
    exit_code=0,
    error="",
    output=("Stopping billing...", "<b>Started</b> billing & friends"),
)


class RemediatedView(FakeView):
    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        snap = super().snapshot(include_history)
        targets = tuple(
            dataclasses.replace(t, remediation=RUN) if t.name == "billing" else t for t in snap.targets
        )
        return dataclasses.replace(snap, targets=targets)


def test_the_detail_view_shows_the_last_remediation_and_its_output_as_text() -> None:
    async def scenario(browser: Chromium) -> None:
        await browser.wait_for("!!document.querySelector('#detail-facts dd')", what="the detail")
        facts = await browser.evaluate(
            """Object.fromEntries([...document.querySelectorAll('#detail-facts dt')]
                .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))"""
        )
        assert facts["Last remediation"].startswith(
            "restarted by `systemctl restart billing`: exit 0 in 1.2 s (by monitor, "
        )
        assert facts["Its last output"] == "Stopping billing...\n<b>Started</b> billing & friends"
        assert await browser.evaluate("document.querySelectorAll('#detail-facts b').length") == 0

    run(RemediatedView(), scenario, path="/?target=billing")
