"""Replicas (SPEC 17): rendezvous hashing of (replica, target), the settings that turn it on, and
the engine checking only its share, saying so in /api/status, on reload too."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from keepalive.config import Settings, load_settings
from keepalive.engine.app import MonitorApp
from keepalive.engine.replicas import Membership, owners
from keepalive.engine.share import own_share, share_line
from keepalive.errors import ConfigError
from keepalive.notifiers.log import LogNotifier
from tests.browser import CHROMIUM, Chromium
from tests.browser import available as browser_available
from tests.fakes.engine import ScriptedChecker, WallClock, targets_settings, toml_targets
from tests.monitor_proc import free_port

NAMES = [f"target-{i}" for i in range(2000)]


def owner_map(replicas: list[str], copies: int) -> dict[str, frozenset[str]]:
    return {name: frozenset(owners(name, replicas, copies)) for name in NAMES}


def test_each_target_has_exactly_copies_distinct_owners_and_every_replica_agrees() -> None:
    replicas = ["a", "b", "c"]
    by_target = owner_map(replicas, 2)

    assert all(len(who) == 2 for who in by_target.values())
    # Each replica alone, from the same list, keeps exactly the targets that name it.
    for name in replicas:
        share = {n for n in NAMES if Membership(name, tuple(replicas), 2).checks(n)}
        assert share == {n for n, who in by_target.items() if name in who}
    # The order in which replicas are listed changes nothing.
    assert owner_map(["c", "a", "b"], 2) == by_target


def test_the_load_is_spread_evenly() -> None:
    load = Counter(r for who in owner_map(["a", "b", "c", "d"], 2).values() for r in who)

    # 2000 targets x 2 copies over 4 replicas: 1000 each expected; SHA-256 keeps it within 10 %.
    assert sorted(load) == ["a", "b", "c", "d"]
    assert all(900 <= count <= 1100 for count in load.values()), load


def test_adding_a_replica_moves_only_what_the_new_one_takes() -> None:
    before = owner_map(["a", "b", "c"], 2)
    after = owner_map(["a", "b", "c", "d"], 2)

    moved = [n for n in NAMES if before[n] != after[n]]
    assert moved  # d takes a share
    for name in moved:
        # d came in, exactly one old owner left; the other old owner kept it.
        assert "d" in after[name]
        assert len(before[name] - after[name]) == 1
        assert len(before[name] & after[name]) == 1
    assert {n for n in NAMES if "d" in after[n]} == set(moved)


def test_removing_a_replica_moves_only_its_share_and_each_target_keeps_its_other_owner() -> None:
    before = owner_map(["a", "b", "c", "d"], 2)
    after = owner_map(["a", "b", "d"], 2)

    moved = {n for n in NAMES if before[n] != after[n]}
    assert moved == {n for n in NAMES if "c" in before[n]}
    for name in moved:
        assert before[name] - {"c"} <= after[name]  # the survivor still checks it


def test_without_replicas_everything_is_checked() -> None:
    alone = Membership("solo")
    assert alone.share(tuple(range(0))) == ()
    assert all(alone.checks(n) for n in NAMES[:10])
    assert alone.describe(3, 3) == "replica solo: alone (MONITOR_REPLICAS unset), checks all 3 target(s)"


def test_copies_beyond_the_replicas_means_everyone_checks_everything() -> None:
    membership = Membership("a", ("a", "b"), copies=5)
    assert membership.effective_copies == 2
    assert all(membership.checks(n) for n in NAMES[:50])


def env(tmp_path: Path, **values: str) -> dict[str, str]:
    return {"MONITOR_ENV_FILE": "", "MONITOR_STATE_DIR": str(tmp_path / "state"), **values}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"MONITOR_NAME": "x", "MONITOR_REPLICAS": "a,b"},
            "MONITOR_REPLICAS='a,b' is invalid: expected every replica's name, "
            "this one's (MONITOR_NAME='x') included",
        ),
        (
            {"MONITOR_NAME": "a", "MONITOR_REPLICAS": "a,b,a"},
            "MONITOR_REPLICAS='a,b,a' is invalid: a name is listed twice",
        ),
        ({"MONITOR_COPIES": "0"}, "MONITOR_COPIES='0' is invalid: expected an integer from 1 to 100"),
        ({"MONITOR_COPIES": "two"}, "MONITOR_COPIES='two' is invalid: expected an integer from 1 to 100"),
        (
            {"MONITOR_NAME": "has space"},
            "MONITOR_NAME='has space' is invalid: expected 1-63 letters, digits, '.', '_' or '-'",
        ),
    ],
)
def test_bad_replica_settings_are_one_line_naming_the_setting(
    tmp_path: Path, values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env(tmp_path, **values), root=tmp_path)
    assert str(caught.value) == message


def test_the_share_line_says_what_this_replica_checks(tmp_path: Path) -> None:
    entries = [{"name": n, "url": f"http://{n}.example/health"} for n in NAMES[:30]]
    settings = targets_settings(
        tmp_path, toml_targets(*entries), MONITOR_NAME="b", MONITOR_REPLICAS="a,b,c", MONITOR_COPIES="2"
    )
    mine = [n for n in NAMES[:30] if "b" in owners(n, ["a", "b", "c"], 2)]

    assert share_line(settings) == f"replica b of 3 (a, b, c), copies 2: checks {len(mine)} of 30 target(s)"
    assert [t.name for t in own_share(settings).targets] == mine


def test_the_engine_checks_only_its_share_says_so_and_follows_a_reload(tmp_path: Path) -> None:
    names = NAMES[:12]
    entries = [{"name": n, "url": f"http://{n}.example/health", "interval": 0.2} for n in names]
    port = free_port()

    def settings(replicas: str) -> Settings:
        return targets_settings(
            tmp_path,
            toml_targets(*entries),
            MONITOR_NAME="b",
            MONITOR_REPLICAS=replicas,
            MONITOR_HTTP_PORT=str(port),
        )

    loads: list[str] = ["a,b"]
    checker = ScriptedChecker(WallClock())
    app = MonitorApp.build(
        settings("a,b,c"),
        load=lambda: settings(loads[0]),
        notifier_factory=lambda s: [LogNotifier()],
        checker=checker,
    )
    three = [n for n in names if "b" in owners(n, ["a", "b", "c"], 2)]
    two = names  # two replicas, two copies: each checks everything

    async def status(session: aiohttp.ClientSession) -> dict[str, object]:
        async with session.get(f"http://127.0.0.1:{port}/api/status") as answer:
            return json.loads(await answer.text())  # type: ignore[no-any-return]

    async def go() -> tuple[dict[str, object], dict[str, object], set[str]]:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        await until(lambda: set(checker.checked) == set(three), "each of the share checked")
        async with aiohttp.ClientSession() as session:
            first = await status(session)
            await app.reload()
            checker.checked.clear()
            await until(lambda: set(checker.checked) == set(two), "every target checked after the reload")
            second = await status(session)
        stop.set()
        await task
        return first, second, set(checker.checked)

    try:
        first, second, _ = asyncio.run(go())
    finally:
        app.close()
    assert [t["name"] for t in first["targets"]] == three  # type: ignore[attr-defined,index]
    assert first["replica"] == {
        "name": "b",
        "replicas": ["a", "b", "c"],
        "copies": 2,
        "checks": len(three),
        "of": 12,
    }
    assert [t["name"] for t in second["targets"]] == two  # type: ignore[attr-defined,index]
    assert second["replica"] == {"name": "b", "replicas": ["a", "b"], "copies": 2, "checks": 12, "of": 12}


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(20):
        while not condition():
            await asyncio.sleep(0.02)


@pytest.mark.browser
@pytest.mark.skipif(not browser_available(), reason=f"needs Debian's chromium at {CHROMIUM}")
def test_the_page_says_which_share_this_replica_checks(tmp_path: Path) -> None:
    names = NAMES[:12]
    entries = [{"name": n, "url": f"http://{n}.example/health", "interval": 0.5} for n in names]
    port = free_port()
    settings = targets_settings(
        tmp_path,
        toml_targets(*entries),
        MONITOR_NAME="b",
        MONITOR_REPLICAS="a,b,c",
        MONITOR_HTTP_PORT=str(port),
    )
    app = MonitorApp.build(
        settings,
        load=lambda: settings,
        notifier_factory=lambda s: [LogNotifier()],
        checker=ScriptedChecker(WallClock()),
    )
    mine = [n for n in names if "b" in owners(n, ["a", "b", "c"], 2)]

    async def go() -> tuple[str, int]:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        try:
            await asyncio.wait_for(started.wait(), 20)
            async with Chromium() as browser:
                await browser.open(f"http://127.0.0.1:{port}/")
                meta = await browser.wait_for(
                    "document.getElementById('monitor-meta').textContent.includes('replica b') && "
                    "document.getElementById('monitor-meta').textContent",
                    what="the replica in the monitor line",
                )
                rows = await browser.wait_for(
                    f"document.querySelectorAll('#target-rows tr.row').length === {len(mine)} && {len(mine)}",
                    what="one row per target of the share",
                )
                assert browser.console_errors == []
                return str(meta), int(rows)
        finally:
            stop.set()
            await task

    try:
        meta, rows = asyncio.run(go())
    finally:
        app.close()
    assert f"replica b of 3: checks {len(mine)} of 12 targets" in meta
    assert rows == len(mine)
