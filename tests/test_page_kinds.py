"""Each kind of check on the status page (SPEC 14), in chromium against the real web app: a
push target's last ping and its period and grace, a log target's file, last match and note, an
https target's certificate (in hours, never "0 days", once less than a day is left), and the
kind marker of tcp/push/log rows; axe-core and the hand checks on the kinds' detail sections."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from keepalive.engine.snapshot import MonitorSnapshot, TargetSnapshot
from keepalive.probe.detail import Detail
from keepalive.state import Status
from tests.browser import CHROMIUM, Chromium, available
from tests.test_page_a11y import AXE, HAND_CHECKS
from tests.test_status_page import rows_shown
from tests.test_web import FakeView, serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

LINE = "Traceback (most recent call last):"
NOTE = "skipped 84.0 MiB: more than 16.0 MiB since the last check"
FACTS = """Object.fromEntries([...document.querySelectorAll('#detail-kind-facts dt')]
    .map((dt) => [dt.textContent, dt.nextElementSibling.textContent]))"""


def target(name: str, url: str, kind: str, detail: Detail | None, **fields: Any) -> TargetSnapshot:
    values: dict[str, Any] = {
        "state": Status.UP,
        "last_check": None,
        "last_latency_ms": 1.0,
        "last_reason": None,
        "consecutive_failures": 0,
        "since": None,
        "interval_seconds": 300.0,
        "uptime_percent": 100.0,
        "checks_ok_total": 10,
        "checks_failed_total": 0,
    }
    values.update(fields)
    return TargetSnapshot(name=name, url=url, kind=kind, detail=detail, **values)


class KindsView(FakeView):
    """FakeView's two HTTP targets and one of each other kind; times relative to the snapshot's
    clock, which is the page's (its ages are on the monitor's clock)."""

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        base = super().snapshot(include_history)
        at = base.taken_at
        history = () if include_history else None
        kinds = (
            target("backup", "push://backup", "push", Detail(last_ping=at - 300), grace_seconds=60.0),
            target(
                "nightly",
                "push://nightly",
                "push",
                Detail(last_ping=at - 400),
                state=Status.FAILING,
                last_reason="no ping for 6m (expected every 5m)",
                consecutive_failures=2,
                since=at - 30,
                last_check=at - 5,
            ),
            target("fresh-job", "push://fresh-job", "push", Detail(), interval_seconds=3600.0),
            target(
                "worker",
                "log:///var/log/worker.log",
                "log",
                Detail(
                    log_file="/var/log/worker.log", last_match=LINE, last_match_at=at - 180, log_note=NOTE
                ),
            ),
            target("shop", "https://shop.example/health", "http", Detail(cert_expires_at=at + 9.2 * 86400)),
            target("edge", "https://edge.example/health", "http", Detail(cert_expires_at=at + 5.5 * 3600)),
            target("db", "tcp://10.0.0.5:5432", "tcp", None),
        )
        return dataclasses.replace(
            base, targets=base.targets + tuple(dataclasses.replace(t, history=history) for t in kinds)
        )


def run(path: str, scenario: Any) -> Any:
    async def main() -> Any:
        async with serving(KindsView()) as base, Chromium(1280, 800) as browser:
            await browser.open(base + path)
            await rows_shown(browser, 9)
            result = await scenario(browser)
            assert browser.console_errors == []
            return result

    return asyncio.run(main())


async def detail_facts(browser: Chromium, heading: str) -> dict[str, str]:
    await browser.wait_for(
        "!document.getElementById('detail-kind').hidden && "
        f"document.getElementById('detail-kind-heading').textContent === {heading!r}",
        what=f"the {heading} section",
    )
    facts: dict[str, str] = await browser.evaluate(FACTS)
    return facts


def test_rows_show_each_kinds_marker_and_its_fact_in_the_reason_cell() -> None:
    async def scenario(browser: Chromium) -> None:
        rows = {row["target"]: row for row in await rows_shown(browser, 9)}
        reason = {name: row["cells"]["Reason"] for name, row in rows.items()}
        assert reason["backup"] == "last ping 5 min ago"
        assert reason["fresh-job"] == "never pinged"
        # A reason stays first; the kind's fact goes below it, after the failures.
        assert (
            reason["nightly"] == "no ping for 6m (expected every 5m)2 failures in a row · last ping 6 min ago"
        )
        assert reason["worker"] == f"/var/log/worker.log · last match 3 min ago: {LINE}"
        assert reason["shop"] == "certificate: 9 days left"
        assert reason["edge"] == "certificate: 5 h left"  # never "0 days" while hours remain
        assert reason["billing"] == "connection refused5 failures in a row"  # plain HTTP: unchanged
        target = {name: row["cells"]["Target"] for name, row in rows.items()}
        assert target["backup"] == "backuppushpush://backup"
        assert target["worker"] == "workerloglog:///var/log/worker.log"
        assert target["db"] == "dbtcptcp://10.0.0.5:5432"
        assert target["shop"] == "shophttps://shop.example/health"  # http: no marker
        levels = await browser.evaluate(
            """Object.fromEntries(['shop', 'edge'].map((name) => [name,
                document.querySelector(`tr[data-target="${name}"] td.c-reason span`).className]))"""
        )
        assert levels == {"shop": "cert-soon", "edge": "cert-urgent"}

    run("/", scenario)


def test_a_push_targets_detail_shows_its_last_ping_period_and_grace() -> None:
    async def scenario(browser: Chromium) -> None:
        assert await detail_facts(browser, "Push check") == {
            "Last ping": "5 min ago",
            "Expected every": "5 min",
            "Grace": "1 min",
            "Failed after": "6 min without a ping",
        }

    run("/?target=backup", scenario)


def test_a_push_target_never_pinged_says_so_and_its_grace_is_its_interval() -> None:
    async def scenario(browser: Chromium) -> None:
        assert await detail_facts(browser, "Push check") == {
            "Last ping": "never pinged",
            "Expected every": "1 h",
            "Grace": "1 h",
            "Failed after": "2 h without a ping",
        }

    run("/?target=fresh-job", scenario)


def test_a_log_targets_detail_shows_its_file_last_match_and_note() -> None:
    async def scenario(browser: Chromium) -> None:
        assert await detail_facts(browser, "Log file") == {
            "File": "/var/log/worker.log",
            "Last match": LINE,
            "Found": "3 min ago",
            "Note": NOTE,
        }

    run("/?target=worker", scenario)


def test_an_https_targets_detail_shows_the_certificates_expiry_and_time_left() -> None:
    async def scenario(browser: Chromium) -> dict[str, str]:
        return await detail_facts(browser, "TLS certificate")

    # The snapshot is taken at 2026-01-02 03:00:00.5 UTC: 9.2 days and 5.5 hours later.
    assert run("/?target=shop", scenario) == {"Expires": "2026-01-11 07:48 UTC", "Time left": "9 days left"}
    assert run("/?target=edge", scenario) == {"Expires": "2026-01-02 08:30 UTC", "Time left": "5 h left"}


def test_switching_to_a_plain_http_target_hides_the_kind_section() -> None:
    async def scenario(browser: Chromium) -> None:
        await detail_facts(browser, "Push check")
        await browser.evaluate("document.querySelector('#detail-close').click()")
        await browser.wait_for("document.getElementById('detail').hidden")
        await browser.evaluate("document.querySelector('tr[data-target=\"billing\"] a.name').click()")
        await browser.wait_for(
            "document.getElementById('detail-name').textContent === 'billing' && "
            "!!document.querySelector('#detail-facts dd')",
            what="billing's detail",
        )
        assert await browser.evaluate("document.getElementById('detail-kind').hidden") is True

    run("/?target=backup", scenario)


@pytest.mark.parametrize("name", ["backup", "worker", "edge"])
def test_the_kinds_sections_pass_the_hand_checks_and_axe_core(name: str) -> None:
    async def scenario(browser: Chromium) -> tuple[list[str], list[str] | None]:
        await browser.wait_for("!document.getElementById('detail-kind').hidden", what="the kind section")
        problems: list[str] = await browser.evaluate(HAND_CHECKS)
        if not AXE.exists():
            return problems, None
        await browser.evaluate(AXE.read_text() + "\n;true")
        violations: list[str] = await browser.evaluate(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
            " 'best-practice']}, resultTypes: ['violations']}).then((r) => r.violations.map((v) =>"
            " v.id + ': ' + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')))"
        )
        return problems, violations

    problems, violations = run(f"/?target={name}", scenario)
    assert problems == []
    assert violations in ([], None)
