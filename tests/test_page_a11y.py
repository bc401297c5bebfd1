"""Accessibility of the status page in chromium: axe-core's rules (WCAG 2.1 A and AA) at zero
violations, for the list, a target's detail, a phone's width and the dark scheme; and the same
basic checks by hand, which need no axe-core.

axe-core is not vendored: .ci/run installs it with npm into ~/.cache/keepalive-axe (or point
AXE_CORE_JS at an axe.min.js). Without it the axe test skips, except under CI.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.browser import CHROMIUM, Chromium, available
from tests.test_web import FakeView, serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not available(), reason=f"needs Debian's chromium at {CHROMIUM}"),
]

AXE = Path(
    os.environ.get("AXE_CORE_JS") or Path.home() / ".cache/keepalive-axe/node_modules/axe-core/axe.min.js"
)
VIEWS = {
    "list": ("/", 1280, 800, False, "light"),
    "detail": ("/?target=billing", 1280, 800, False, "light"),
    "phone": ("/", 390, 800, True, "light"),
    "dark": ("/?target=billing", 1280, 800, False, "dark"),
}
READY = (
    "document.querySelectorAll('#target-rows tr.row').length === 2 && "
    "(!new URLSearchParams(location.search).get('target') || !!document.querySelector('#detail-facts dd'))"
)

HAND_CHECKS = """(() => {
    const problems = [];
    const name = (el) => (el.getAttribute('aria-label') || el.textContent || '').trim();
    if (!document.documentElement.lang) problems.push('html has no lang');
    if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
    const ids = [...document.querySelectorAll('[id]')].map((el) => el.id);
    for (const id of new Set(ids)) if (ids.filter((x) => x === id).length > 1) problems.push('duplicate id ' + id);
    for (const el of document.querySelectorAll('input, select, textarea')) {
        if (!el.labels || el.labels.length === 0) problems.push('unlabelled ' + el.id);
    }
    for (const el of document.querySelectorAll('button, a[href]')) {
        if (!name(el)) problems.push('nameless ' + el.outerHTML.slice(0, 60));
    }
    for (const el of document.querySelectorAll('svg[role=img]')) {
        if (!el.querySelector('title') || !el.querySelector('title').textContent) problems.push('svg without title');
    }
    for (const th of document.querySelectorAll('th')) if (!th.getAttribute('scope')) problems.push('th without scope');
    for (const el of document.querySelectorAll('[tabindex]')) if (el.tabIndex > 0) problems.push('positive tabindex');
    for (const table of document.querySelectorAll('table')) {
        if (!table.getAttribute('aria-labelledby') && !table.closest('section[aria-labelledby]')) problems.push('unnamed table');
    }
    return problems;
})()"""


def open_view(view: str, scenario: Any) -> Any:
    path, width, height, mobile, scheme = VIEWS[view]

    async def main() -> Any:
        async with serving(FakeView()) as base, Chromium(width, height, mobile=mobile) as browser:
            await browser.call(
                "Emulation.setEmulatedMedia", features=[{"name": "prefers-color-scheme", "value": scheme}]
            )
            await browser.open(base + path)
            await browser.wait_for(READY, what="the page drawn")
            return await scenario(browser)

    return asyncio.run(main())


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_the_basic_checks_by_hand_find_nothing(view: str) -> None:
    async def scenario(browser: Chromium) -> list[str]:
        problems: list[str] = await browser.evaluate(HAND_CHECKS)
        return problems

    assert open_view(view, scenario) == []


@pytest.mark.skipif(
    not AXE.exists() and not os.environ.get("CI"),
    reason=f"needs axe-core at {AXE} (npm install --prefix ~/.cache/keepalive-axe axe-core)",
)
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_axe_core_finds_no_violation(view: str) -> None:
    source = AXE.read_text()

    async def scenario(browser: Chromium) -> list[str]:
        await browser.evaluate(source + "\n;true")
        violations: list[dict[str, Any]] = await browser.evaluate(
            "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa',"
            " 'best-practice']}, resultTypes: ['violations']}).then((r) => r.violations.map((v) =>"
            " ({id: v.id, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary)})))"
        )
        return [f"{v['id']} ({v['help']}): {v['nodes'][:3]}" for v in violations]

    assert open_view(view, scenario) == []
