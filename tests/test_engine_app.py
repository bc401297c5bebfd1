"""The composition root in-process: built from settings with the checker and notifiers passed
in, run until stopped, reloaded through a settings loader that can fail."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from keepalive.config import Settings
from keepalive.engine.app import MonitorApp
from keepalive.errors import ConfigError
from keepalive.notifiers.log import LogNotifier
from tests.fakes.engine import ScriptedChecker, WallClock, targets_settings, toml_targets
from tests.monitor_proc import free_port


def settings_with(tmp_path: Path, *names: str) -> Settings:
    entries = [{"name": n, "url": f"http://{n}.example/health", "interval": 0.2} for n in names]
    return targets_settings(
        tmp_path, toml_targets(*entries), MONITOR_HTTP_HOST="127.0.0.1", MONITOR_HTTP_PORT=str(free_port())
    )


def build(tmp_path: Path, load: Callable[[], Settings]) -> tuple[MonitorApp, ScriptedChecker]:
    checker = ScriptedChecker(WallClock())
    app = MonitorApp.build(
        settings_with(tmp_path, "api"),
        load=load,
        notifier_factory=lambda s: [LogNotifier()],
        checker=checker,
    )
    return app, checker


def events(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(20):
        while not condition():
            await asyncio.sleep(0.02)


def test_it_serves_checks_and_stops_every_part_in_order(tmp_path: Path) -> None:
    app, checker = build(tmp_path, lambda: settings_with(tmp_path, "api"))

    async def go() -> None:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        assert app.web_address is not None and app.web_address.startswith("http://127.0.0.1:")
        await until(lambda: len(checker.checked) >= 2, "two checks")
        async with aiohttp.ClientSession() as session, session.get(app.web_address + "health") as answer:
            assert answer.status == 200
            assert (await answer.json())["status"] == "ok"
        stop.set()
        await task

    try:
        asyncio.run(go())
    finally:
        app.close()
    names = [e["event"] for e in events(tmp_path)]
    assert names[0] == "monitor_started" and names[-1] == "monitor_stopped"
    assert checker.closed
    with pytest.raises(Exception, match="closed"):
        app.outbox.depth()  # closed on stop


def test_a_reload_applies_what_the_loader_reads_and_a_failing_one_keeps_the_running_config(
    tmp_path: Path,
) -> None:
    answers: list[Settings | Exception] = [
        settings_with(tmp_path, "api", "db"),
        ConfigError("MONITOR_TARGETS_FILE='x' is invalid: broken"),
    ]

    def load() -> Settings:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    app, checker = build(tmp_path, load)

    async def go() -> None:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        await app.reload()
        assert list(app.monitor.runtimes) == ["api", "db"]
        await until(lambda: "db" in checker.checked, "db checked")
        await app.reload()
        assert list(app.monitor.runtimes) == ["api", "db"]
        stop.set()
        await task

    try:
        asyncio.run(go())
    finally:
        app.close()
    by_name = {e["event"]: e for e in events(tmp_path)}
    reloaded = by_name["config_reloaded"]
    assert (reloaded["targets"], reloaded["added"], reloaded["changed"], reloaded["removed"]) == (2, 1, 0, 0)
    assert by_name["config_reload_failed"]["error"] == "MONITOR_TARGETS_FILE='x' is invalid: broken"


def test_a_port_that_cannot_be_bound_stops_before_any_check(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first, _ = build(tmp_path / "one", lambda: settings_with(tmp_path, "api"))

    async def go() -> None:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(first.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        assert first.web_address is not None
        port = first.web_address.rsplit(":", 1)[1].rstrip("/")
        taken = targets_settings(
            tmp_path / "two",
            toml_targets({"name": "api", "url": "http://api.example/"}),
            MONITOR_HTTP_HOST="127.0.0.1",
            MONITOR_HTTP_PORT=port,
        )
        checker = ScriptedChecker(WallClock())
        second = MonitorApp.build(taken, notifier_factory=lambda s: [LogNotifier()], checker=checker)
        try:
            with pytest.raises(
                ConfigError, match=f"MONITOR_HTTP_PORT={port} is invalid: address .* already in use"
            ):
                await second.run(asyncio.Event())
        finally:
            second.close()
        assert checker.checked == []
        stop.set()
        await task

    try:
        asyncio.run(go())
    finally:
        first.close()
