"""Push targets (SPEC section 14): the board and probe with a clock moved by hand, then the real
monitor in-process, pinged by real HTTP clients (aiohttp, and curl as the README shows)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest

from keepalive.config import Settings
from keepalive.engine.app import MonitorApp
from keepalive.errors import ConfigError
from keepalive.notifiers.log import LogNotifier
from keepalive.probe.checker import Checker, CheckResult
from keepalive.probe.push import PushBoard, fail_reason, short_duration
from keepalive.targets import Target, load_targets_file
from tests.fakes.engine import targets_settings, toml_targets
from tests.monitor_proc import free_port

TOKEN = "cron-backup-0123456789abcdef"
OTHER = "queue-worker-0123456789abcdef"
BASE = {"interval": 60.0, "failure_threshold": 2, "success_threshold": 1, "timeout": 5.0}


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def push_target(token: str = TOKEN, interval: float = 300.0, grace: float | None = None) -> Target:
    return Target(
        name="backup", url="push://backup", interval=interval, failure_threshold=1, success_threshold=1,
        timeout=5.0, push_token=token, grace=grace,
    )  # fmt: skip


def run_checks(board: PushBoard, clock: Clock, steps: list[Callable[[], Target | None]]) -> list[CheckResult]:
    """Run ``steps`` in order on one checker; each returns a target to check, or None."""

    async def go() -> list[CheckResult]:
        checker = Checker(pushes=board, clock=clock)
        results = []
        try:
            for step in steps:
                target = step()
                if target is not None:
                    results.append(await checker.check(target))
        finally:
            await checker.close()
        return results

    return asyncio.run(go())


def test_silence_past_interval_plus_grace_fails_with_both_durations() -> None:
    clock = Clock()
    board = PushBoard(clock)
    target = push_target()  # grace defaults to the interval: 5m + 5m
    board.set_targets([target])

    def at(offset: float) -> Callable[[], Target]:
        def step() -> Target:
            clock.now = 1_000_000.0 + offset
            return target

        return step

    results = run_checks(board, clock, [at(599), at(601)])
    assert [r.reason for r in results] == [None, "no ping for 10m (expected every 5m)"]


def test_a_ping_resets_the_silence_and_a_fail_ping_fails_with_its_reason() -> None:
    clock = Clock()
    board = PushBoard(clock)
    target = push_target(grace=60.0)
    board.set_targets([target])

    def then(action: Callable[[], object], advance: float = 0.0) -> Callable[[], Target]:
        def step() -> Target:
            clock.now += advance
            action()
            return target

        return step

    results = run_checks(
        board,
        clock,
        [
            then(lambda: None, advance=361),  # 6m01s of silence: more than 5m + 1m
            then(lambda: board.ping(TOKEN)),
            then(lambda: board.ping(TOKEN, fail_reason(b"disk full on /backup\nsecond line"))),
            then(lambda: board.ping(TOKEN), advance=10),  # a later success clears the failure
        ],
    )
    assert [r.reason for r in results] == [
        "no ping for 6m (expected every 5m)",
        None,
        "disk full on /backup",
        None,
    ]
    assert results[-1].detail is not None and results[-1].detail.last_ping == clock.now


def test_unknown_tokens_are_counted_and_never_kept() -> None:
    board = PushBoard(Clock())
    board.set_targets([push_target()])
    assert board.ping("not-a-known-token-0000") is False
    assert board.ping(TOKEN + "x") is False
    assert board.ping(TOKEN) is True
    assert board.unknown_total == 2


def test_a_reload_keeps_the_last_ping_of_a_token_that_stays() -> None:
    clock = Clock()
    board = PushBoard(clock)
    board.set_targets([push_target()])
    board.ping(TOKEN)
    pinged = clock.now
    clock.now += 30
    board.set_targets([push_target(), replace(push_target(OTHER), name="worker")])
    record = board.record(TOKEN)
    assert record is not None and record.last_ping == pinged
    board.set_targets([])
    assert board.record(TOKEN) is None


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the job reported a failure"),
        (b"\n\nlater", "the job reported a failure"),
        (b"exit 3: \x1b[31mfailed\x1b[0m", "exit 3:  [31mfailed [0m"),
        (b"x" * 500, "x" * 200),
        ("é".encode() * 300, "é" * 200),
    ],
)
def test_the_fail_reason_is_the_first_line_printable_and_at_most_200_characters(
    body: bytes, reason: str
) -> None:
    assert fail_reason(body) == reason


@pytest.mark.parametrize(
    ("seconds", "exact", "text"),
    [(45, True, "45s"), (90, True, "1m30s"), (300, True, "5m"), (372, False, "6m"), (5400, True, "1h30m"),
     (86400 * 2 + 3600 * 3, True, "2d3h")],
)  # fmt: skip
def test_durations_are_written_compactly(seconds: float, exact: bool, text: str) -> None:
    assert short_duration(seconds, exact) == text


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (
            'push_token = "short"\n',
            "push_token is invalid: expected 16 to 128 characters of A-Z a-z 0-9 . _ ~ -",
        ),
        (
            f'push_token = "{TOKEN}"\nurl = "http://x/health"\n',
            "url and push_token name different kinds of check",
        ),
        (f'push_token = "{TOKEN}"\ngrace = -1\n', "grace=-1 is invalid: expected a number of seconds >= 0"),
        (
            f'push_token = "{TOKEN}"\nconditions = ["$.a == 1"]\n',
            "conditions does not apply to a push target",
        ),
    ],
)
def test_a_bad_push_target_is_a_config_error_naming_it_without_the_token(
    tmp_path: Path, body: str, problem: str
) -> None:
    path = tmp_path / "targets.toml"
    path.write_text('[[targets]]\nname = "backup"\n' + body)
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert str(caught.value).startswith(f"MONITOR_TARGETS_FILE {path}: target 'backup': {problem}")
    assert TOKEN not in str(caught.value) and "short" not in str(caught.value).split(":", 2)[2]


def test_two_targets_with_one_token_are_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(toml_targets({"name": "a", "push_token": TOKEN}, {"name": "b", "push_token": TOKEN}))
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert str(caught.value) == (
        f"MONITOR_TARGETS_FILE {path}: target 'b': push_token is the same as target 'a''s "
        "(each push target needs its own)"
    )


# ---------------------------------------------------------------- the real monitor, real clients


def test_a_running_monitor_takes_pings_from_real_clients(tmp_path: Path) -> None:
    settings = targets_settings(
        tmp_path,
        toml_targets(
            {"name": "backup", "push_token": TOKEN, "interval": 0.3, "grace": 60, "failure_threshold": 1},
        ),
        MONITOR_HTTP_HOST="127.0.0.1",
        MONITOR_HTTP_PORT=str(free_port()),
        MONITOR_HTTP_AUTH="all",
    )
    app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()])

    async def status(session: aiohttp.ClientSession, base: str) -> dict[str, object]:
        async with session.get(base + "api/status?history=0", headers=_auth(tmp_path)) as answer:
            document = await answer.json()
        (target,) = document["targets"]
        assert isinstance(target, dict)
        return target

    async def go() -> dict[str, object]:
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        base = app.web_address
        assert base is not None
        seen: dict[str, object] = {}
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}ping/{TOKEN}") as answer:
                assert (answer.status, await answer.text()) == (200, "ok\n")
            async with session.post(
                f"{base}ping/{TOKEN}/fail", data=b"backup failed: disk full\nmore"
            ) as answer:
                assert answer.status == 200

            async def failed() -> bool:
                seen.update(await status(session, base))
                return seen["state"] == "down"

            await _until_async(failed)
            assert seen["last_reason"] == "backup failed: disk full"
            assert seen["kind"] == "push" and seen["url"] == "push://backup"
            if shutil.which("curl"):
                # The crontab line of the README, verbatim but for the address.
                done = await asyncio.to_thread(
                    subprocess.run,
                    ["curl", "-fsS", "-m", "10", "--retry", "3", f"{base}ping/{TOKEN}"],
                    capture_output=True,
                    timeout=30,
                )
                assert (done.returncode, done.stdout) == (0, b"ok\n")
            else:
                async with session.post(f"{base}ping/{TOKEN}") as answer:
                    assert answer.status == 200

            async def recovered() -> bool:
                seen.update(await status(session, base))
                return seen["state"] == "up"

            await _until_async(recovered)
            assert isinstance(seen["last_ping"], str)
            for path in (f"ping/{'u' * 20}", f"ping/{'u' * 20}/fail"):
                async with session.get(base + path) as answer:
                    assert answer.status == 404
            metrics = ""

            async def counted() -> bool:
                nonlocal metrics
                async with session.get(base + "metrics", headers=_auth(tmp_path)) as answer:
                    metrics = await answer.text()
                return "keepalive_push_unknown_total 2.0" in metrics  # the snapshot lives 1 s

            await _until_async(counted)
        stop.set()
        await task
        return {"metrics": metrics}

    try:
        out = asyncio.run(go())
    finally:
        app.close()
    assert "keepalive_push_unknown_total 2.0" in str(out["metrics"])
    logged = (tmp_path / "events.jsonl").read_text()
    assert TOKEN not in logged and "u" * 20 not in logged
    kinds = [json.loads(line)["event"] for line in logged.splitlines()]
    assert "target_down" in kinds and "target_recovered" in kinds


def _auth(tmp_path: Path) -> dict[str, str]:
    """The API token for reads under MONITOR_HTTP_AUTH=all (made at first start, SPEC 12)."""
    path = tmp_path / "state" / "api_token"
    return {"Authorization": f"Bearer {path.read_text().strip()}"} if path.exists() else {}


async def _until_async(condition: Callable[[], Awaitable[bool]]) -> None:
    async with asyncio.timeout(20):
        while not await condition():
            await asyncio.sleep(0.05)


# ---------------------------------------------------------------- health_endpoint.Pusher


def test_the_pusher_pings_and_reports_failures_through_the_real_routes() -> None:
    from aiohttp import web

    from health_endpoint import Pusher
    from keepalive.web.ping import add_ping_routes

    clock = Clock()
    board = PushBoard(clock)
    board.set_targets([push_target()])
    health: dict[str, object] = {"status": "ok"}

    def fields() -> dict[str, object]:
        if health.get("raise"):
            raise RuntimeError("database gone")
        return health

    async def go() -> list[tuple[int, str | None]]:
        app = web.Application()
        add_ping_routes(app, board)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        seen: list[tuple[int, str | None]] = []
        try:
            pusher = Pusher(f"http://127.0.0.1:{port}/ping/{TOKEN}", every=60, callback=fields)
            for change in ({}, {"status": "degraded"}, {"raise": True}, {"status": "ok", "raise": False}):
                health.update(change)
                status = await asyncio.to_thread(pusher.push_once)
                record = board.record(TOKEN)
                assert record is not None
                seen.append((status, record.failure))
            unknown = Pusher(f"http://127.0.0.1:{port}/ping/{'n' * 20}", callback=fields)
            seen.append((await asyncio.to_thread(unknown.push_once), None))
        finally:
            await runner.cleanup()
        return seen

    assert asyncio.run(go()) == [
        (200, None),
        (200, 'status is "degraded"'),
        (200, "RuntimeError: database gone"),
        (200, None),
        (404, None),
    ]
    assert board.unknown_total == 1


def test_the_pusher_refuses_a_url_that_is_not_a_ping_url() -> None:
    from health_endpoint import Pusher

    with pytest.raises(ValueError, match="expected http\\(s\\)://<monitor>/ping/<push_token>"):
        Pusher("http://monitor:5005/health")


def test_the_status_report_shows_how_long_ago_a_push_target_pinged() -> None:
    from datetime import UTC, datetime, timedelta

    from keepalive.status_report import kind_note

    forty = (datetime.now(UTC) - timedelta(seconds=40)).isoformat()
    assert kind_note({"kind": "push", "last_ping": forty}) in ("last ping 40 s ago", "last ping 41 s ago")
    assert kind_note({"kind": "push", "last_ping": None}) == "never pinged"
    assert kind_note({"kind": "http", "cert_days_left": 9.4}) == "certificate: 9 days left"
    assert kind_note({"kind": "http", "cert_days_left": 0.4}) == "certificate: less than a day left"


def test_a_daily_job_fails_and_recovers_at_once_not_at_its_next_check(tmp_path: Path) -> None:
    settings = targets_settings(
        tmp_path,
        toml_targets({"name": "backup", "push_token": TOKEN, "interval": 86400, "failure_threshold": 1}),
        MONITOR_HTTP_HOST="127.0.0.1",
        MONITOR_HTTP_PORT=str(free_port()),
    )
    app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()])

    def named(event: str) -> list[dict[str, object]]:
        return [e for e in app.events.recent if e["event"] == event]

    async def go() -> None:
        stop, started = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        base = app.web_address
        assert base is not None
        async with asyncio.timeout(20):
            while app.monitor.checks_total < 1:  # the day-long schedule's first check, at start
                await asyncio.sleep(0.02)
        async with aiohttp.ClientSession() as session:
            # The same verdict again and again is one check, not three: with failure_threshold 1
            # and repeated alerts, three would have raised three DOWN alerts.
            for _ in range(3):
                async with session.post(f"{base}ping/{TOKEN}/fail", data=b"tar: disk full") as answer:
                    assert answer.status == 200
            assert [e["reason"] for e in named("target_down")] == ["tar: disk full"]
            for _ in range(3):
                async with session.get(f"{base}ping/{TOKEN}") as answer:
                    assert answer.status == 200
            assert len(named("target_recovered")) == 1
        stop.set()
        await task

    try:
        asyncio.run(go())
    finally:
        app.close()


def test_a_restart_measures_silence_from_the_last_ping_before_it(tmp_path: Path) -> None:
    def settings() -> Settings:
        return targets_settings(
            tmp_path,
            toml_targets({"name": "backup", "push_token": TOKEN, "interval": 3600}),
            MONITOR_HTTP_HOST="127.0.0.1",
            MONITOR_HTTP_PORT=str(free_port()),
        )

    async def run(ping: bool) -> float | None:
        app = MonitorApp.build(settings(), notifier_factory=lambda s: [LogNotifier()])
        try:
            stop, started = asyncio.Event(), asyncio.Event()
            task = asyncio.create_task(app.run(stop, started.set))
            await asyncio.wait_for(started.wait(), 20)
            if ping:
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{app.web_address}ping/{TOKEN}") as answer,
                ):
                    assert answer.status == 200
            async with asyncio.timeout(20):
                while app.monitor.checks_total < 1:
                    await asyncio.sleep(0.02)
            record = app.monitor.pushes.record(TOKEN)
            assert record is not None
            stop.set()
            await task
            return record.last_ping
        finally:
            app.close()

    before = asyncio.run(run(ping=True))
    assert before is not None
    assert json.loads((tmp_path / "state" / "push_pings.json").read_text()) == {"backup": before}
    assert asyncio.run(run(ping=False)) == before
