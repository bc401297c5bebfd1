"""The status page rendered by a real browser (Debian's headless chromium) against a fake view."""

from __future__ import annotations

import asyncio
import os
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from keepalive.engine.snapshot import MonitorSnapshot
from tests.test_web import EVIL, AlertPathFailingView, FakeView, serving

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [
    pytest.mark.browser,
    # CI installs chromium (.ci/run), so there a missing browser fails instead of skipping.
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]

# --no-sandbox: chromium refuses to start as root without it. The --disable-* flags stop it
# from calling Google services, which this offline machine refuses and which would slow it down.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Runs the page's timers and fetches to completion without waiting in real time.
    "--virtual-time-budget=5000",
]


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def walk(self) -> list[Node]:
        found = [self]
        for child in self.children:
            if isinstance(child, Node):
                found += child.walk()
        return found

    def find(self, tag: str | None = None, **attrs: str) -> list[Node]:
        return [
            node
            for node in self.walk()
            if (tag is None or node.tag == tag) and all(node.attrs.get(k) == v for k, v in attrs.items())
        ]

    def by_id(self, element_id: str) -> Node:
        (node,) = self.find(id=element_id)
        return node


class DomBuilder(HTMLParser):
    """Just enough of a DOM to ask questions about chromium's --dump-dom output."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "source", "wbr"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {name: value or "" for name, value in attrs})
        self.stack[-1].children.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(html: str) -> Node:
    builder = DomBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


async def run_chromium(url: str, profile: Path, *extra: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(CHROMIUM),
        *FLAGS,
        f"--user-data-dir={profile}",
        *extra,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout.decode()


def render(view: Any, profile: Path, *extra: str) -> str:
    """Serve ``view`` and return what chromium printed for the page."""

    async def main() -> str:
        async with serving(view) as base:
            return await run_chromium(base + "/", profile, *extra)

    return asyncio.run(main())


@pytest.fixture(scope="module")
def dumped(tmp_path_factory: pytest.TempPathFactory) -> str:
    return render(FakeView(), tmp_path_factory.mktemp("chromium"), "--dump-dom")


@pytest.fixture(scope="module")
def dom(dumped: str) -> Node:
    return parse(dumped)


def row_of(dom: Node, **attrs: str) -> Node:
    (row,) = dom.find("tr", **attrs)
    return row


def cell_text(row: Node, label: str) -> str:
    (cell,) = [node for node in row.find("td") if node.attrs.get("data-label") == label]
    return cell.text().strip()


def test_each_target_is_a_row_with_its_state(dom: Node) -> None:
    rows = dom.by_id("target-rows").find("tr")
    # Problems first: the down target leads although the view lists it second.
    assert [row.attrs["data-target"] for row in rows] == ["billing", EVIL]

    down = row_of(dom, **{"data-target": "billing"})
    assert "down" in down.classes
    (badge,) = [node for node in down.find("span") if "badge" in node.classes]
    assert badge.classes == {"badge", "down"}
    assert badge.text() == "down"
    assert cell_text(down, "Latency") == "–"
    assert cell_text(down, "Reason") == "connection refused5 failures in a row"
    assert cell_text(down, "Uptime") == "83.33 %"
    assert cell_text(down, "Last check").endswith(" ago")

    up = row_of(dom, **{"data-target": EVIL})
    assert "up" in up.classes
    (badge,) = [node for node in up.find("span") if "badge" in node.classes]
    assert (badge.classes, badge.text()) == ({"badge", "up"}, "up")
    assert cell_text(up, "Latency") == "13 ms"
    assert cell_text(up, "Uptime") == "98.30 %"


def test_a_hostile_target_name_is_shown_as_text_and_never_run(dumped: str, dom: Node) -> None:
    row = row_of(dom, **{"data-target": EVIL})
    (name,) = [node for node in row.find("span") if "name" in node.classes]
    assert name.text() == EVIL
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dumped
    # The only script on the page is the page's own.
    assert [node.attrs for node in dom.find("script")] == [{"src": "static/status.js", "defer": ""}]


def test_the_sparkline_marks_failed_checks_in_red(dom: Node) -> None:
    down = row_of(dom, **{"data-target": "billing"})
    assert len([bar for bar in down.find("rect") if "fail" in bar.classes]) == 3
    (line,) = down.find("polyline")  # the two good checks before the outage
    assert len(line.attrs["points"].split()) == 2
    up = row_of(dom, **{"data-target": EVIL})
    (line,) = up.find("polyline")
    assert len(line.attrs["points"].split()) == 5
    assert not [bar for bar in up.find("rect") if "fail" in bar.classes]


def test_the_summary_counts_targets_and_shows_the_monitor(dom: Node) -> None:
    counts = {state: dom.by_id(f"count-{state}").text() for state in ("up", "failing", "down", "unknown")}
    assert counts == {"up": "1", "failing": "0", "down": "1", "unknown": "0"}
    assert dom.by_id("outbox-depth").text() == "2"
    assert dom.by_id("outbox-label").text() == "alerts queued, oldest 42 s"
    status = dom.by_id("monitor-status")
    assert (status.classes, status.text()) == ({"badge", "ok"}, "monitor ok")
    assert (
        dom.by_id("monitor-meta").text()
        == "test-host · version 1.0.0 · running 1 h · 240 checks, 3 missed · schedule lag p99 12 ms"
    )
    assert "hidden" in dom.by_id("banner").attrs
    (title,) = dom.find("head")[0].find("title")
    assert title.text() == "1 down · Keep-Alive Monitor"


def test_channels_show_state_last_success_and_last_error(dom: Node) -> None:
    rows = dom.by_id("channel-rows").find("tr")
    assert [row.attrs["data-channel"] for row in rows] == ["log", "telegram", "email"]
    telegram = rows[1]
    assert cell_text(telegram, "Status") == "on"
    assert cell_text(telegram, "Last error").startswith("HTTP 502 Bad Gateway")
    assert cell_text(telegram, "Sent / failed") == "3 / 7"
    email = rows[2]
    assert "off" in email.classes
    assert cell_text(email, "Channel") == "emailSMTP_SERVER is not set"
    assert cell_text(email, "Last success") == "never"
    assert cell_text(email, "Last error") == "none"


class BrokenView(FakeView):
    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        raise RuntimeError("the core is broken")


def test_it_says_connection_lost_when_the_monitor_does_not_answer(tmp_path: Path) -> None:
    dom = parse(render(BrokenView(), tmp_path / "profile", "--dump-dom"))
    banner = dom.by_id("banner")
    assert "hidden" not in banner.attrs
    assert (
        banner.text()
        .strip()
        .startswith("Connection lost: the monitor answered HTTP 500. Retrying every 5 s.")
    )
    assert "stale" in dom.find("body")[0].classes


def test_a_screenshot_can_be_taken(tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    render(FakeView(), tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,800")
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 800)


def test_an_unhealthy_monitor_says_why_on_its_badge(tmp_path: Path) -> None:
    dom = parse(render(AlertPathFailingView(), tmp_path / "profile", "--dump-dom"))
    badge = dom.by_id("monitor-status")
    assert badge.classes == {"badge", "stalled"}
    assert badge.text() == "monitor alert path failing"
    assert badge.attrs["title"] == AlertPathFailingView.PROBLEM
