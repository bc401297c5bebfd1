"""The page stays current without a reload: a real monitor (a subprocess) checking real
loopback targets, one of which is switched off and on again while chromium watches; and the
polling fallback when the event stream is refused."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from keepalive.web.app import start_web
from keepalive.web.stream import EventHub
from tests.browser import CHROMIUM, Chromium, available
from tests.fakes.targets import TargetServer
from tests.monitor_proc import MonitorProcess, base_env, free_port
from tests.test_web import FakeView

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]


@asynccontextmanager
async def serving_with(view: Any, hub: EventHub) -> AsyncIterator[str]:
    runner = await start_web(view, "127.0.0.1", 0, hub=hub)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def row_class(name: str) -> str:
    return f"(document.querySelector('#target-rows tr[data-target=\"{name}\"]') || {{}}).className"


# Set once the page has loaded; a reload would lose it.
MARK = "window.__notReloaded = true"
NOT_RELOADED = "window.__notReloaded === true && performance.getEntriesByType('navigation').length === 1"


def test_a_target_switched_off_turns_red_and_back_without_a_reload(tmp_path: Path) -> None:
    with TargetServer() as steady, TargetServer() as billing:
        billing_port = int(billing.url("billing").split(":")[2].split("/")[0])
        targets = tmp_path / "targets.toml"
        targets.write_text(
            "[defaults]\ninterval = 0.2\ntimeout = 1\nfailure_threshold = 2\n"
            f'[[targets]]\nname = "api"\nurl = "{steady.url("api")}"\n'
            f'[[targets]]\nname = "billing"\nurl = "{billing.url("billing")}"\n'
        )
        port = free_port()
        monitor = MonitorProcess(
            tmp_path, base_env(tmp_path, MONITOR_TARGETS_FILE=str(targets), MONITOR_HTTP_PORT=str(port))
        ).start()
        try:

            async def scenario() -> None:
                async with Chromium() as browser:
                    await browser.open(f"http://127.0.0.1:{port}/")
                    await browser.wait_for(f"{row_class('billing')} === 'row up'", what="billing up")
                    await browser.wait_for("document.getElementById('connection').textContent === 'live'")
                    await browser.evaluate(MARK)

                    billing.stop()  # connection refused from now on
                    await browser.wait_for(f"{row_class('billing')} === 'row down'", what="billing down")
                    assert await browser.evaluate(NOT_RELOADED) is True
                    assert await browser.evaluate("document.getElementById('count-down').textContent") == "1"
                    assert await browser.evaluate("document.title") == "1 down · Keep-Alive Monitor"
                    # Problems first: the red row moved to the top by itself.
                    first = "document.querySelector('#target-rows tr.row').dataset.target"
                    assert await browser.evaluate(first) == "billing"
                    reason = await browser.evaluate(
                        "document.querySelector('tr[data-target=\"billing\"] td.c-reason').textContent"
                    )
                    assert reason.startswith("connection refused")

                    # Paused, the screen holds still while the target comes back ...
                    await browser.evaluate("document.getElementById('pause').click()")
                    with TargetServer(port=billing_port):
                        await browser.wait_for(
                            "document.getElementById('pause').textContent.startsWith('Resume (')",
                            what="updates waiting while paused",
                        )
                        assert await browser.evaluate(row_class("billing")) == "row down"
                        # ... and shows where things are at once when resumed.
                        await browser.evaluate("document.getElementById('pause').click()")
                        await browser.wait_for(
                            f"{row_class('billing')} === 'row up'", what="billing up again"
                        )
                    assert await browser.evaluate(NOT_RELOADED) is True
                    assert browser.console_errors == []

            asyncio.run(scenario())
        finally:
            monitor.stop()


def test_the_page_polls_when_the_stream_is_refused() -> None:
    view = FakeView()

    async def scenario() -> None:
        # No stream slot at all: every /api/events is a 503.
        async with serving_with(view, EventHub(view, max_streams=0)) as base, Chromium() as browser:
            await browser.open(base + "/")
            await browser.wait_for(f"{row_class('billing')} === 'row down'", what="the first picture")
            await browser.wait_for(
                "document.getElementById('connection').textContent === 'polling every 5 s'", what="polling"
            )
            await browser.evaluate(MARK)
            document: dict[str, Any] = copy.deepcopy(view.document)
            billing = next(t for t in document["targets"] if t["name"] == "billing")
            billing.update(state="up", last_reason=None, last_check="2026-01-02T03:00:30.000Z")
            document["monitor"].update(targets_up=2, targets_down=0)
            view.document = json.loads(json.dumps(document))
            view.changed()
            await browser.wait_for(f"{row_class('billing')} === 'row up'", timeout=20, what="the next poll")
            assert await browser.evaluate(NOT_RELOADED) is True

    asyncio.run(scenario())
