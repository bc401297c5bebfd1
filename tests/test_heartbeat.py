"""The outgoing heartbeat against a loopback server that counts pings."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from keepalive.heartbeat import run_heartbeat

SECRET_PATH = "/ping/5f1c2a9e-7d4b-4c3e-9a61-0b8e2f6d1c77"
WAIT = 10.0  # generous ceiling for a condition that normally holds within milliseconds


class Signal:
    """Lets a test wait for a condition that the code under test changes."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def poke(self) -> None:
        self._event.set()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(WAIT):
            while True:
                self._event.clear()  # cleared before the check, so a poke in between is not lost
                if predicate():
                    return
                await self._event.wait()


class PingServer:
    """Counts GETs to SECRET_PATH and answers with ``status``; ``hold`` makes it hang."""

    def __init__(self, signal: Signal, status: int = 200) -> None:
        self.signal = signal
        self.status = status
        self.pings = 0
        self.hold = False
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.pings += 1
        self.signal.poke()
        if self.hold:
            await self.release.wait()
        return web.Response(status=self.status, text="OK")


@asynccontextmanager
async def ping_server(server: PingServer) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get(SECRET_PATH, server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{SECRET_PATH}"
    finally:
        server.release.set()
        await runner.cleanup()


class Probe:
    """problem and on_result for run_heartbeat, recording every call."""

    def __init__(self, signal: Signal) -> None:
        self.signal = signal
        self.progressing = True
        self.asked = 0
        self.results: list[tuple[bool, str]] = []

    def problem(self) -> str | None:
        self.asked += 1
        self.signal.poke()
        return None if self.progressing else "the checking loop has stopped making progress"

    def on_result(self, ok: bool, reason: str) -> None:
        self.results.append((ok, reason))
        self.signal.poke()


Scenario = Callable[[PingServer, Probe, Signal, "asyncio.Task[None]", asyncio.Event], Awaitable[None]]


def run_scenario(
    scenario: Scenario, status: int = 200, hold: bool = False, interval: float = 0.1, timeout: float = 10.0
) -> None:
    async def main() -> None:
        signal = Signal()
        server = PingServer(signal, status)
        server.hold = hold
        probe = Probe(signal)
        stop = asyncio.Event()
        async with ping_server(server) as url, aiohttp.ClientSession() as session:
            task = asyncio.create_task(
                run_heartbeat(
                    url,
                    session,
                    probe.problem,
                    stop,
                    interval=interval,
                    timeout=timeout,
                    on_result=probe.on_result,
                )
            )
            try:
                await scenario(server, probe, signal, task, stop)
            finally:
                stop.set()
                async with asyncio.timeout(WAIT):
                    await task

    asyncio.run(main())


def test_it_pings_at_once_and_again_every_interval_while_progressing() -> None:
    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: server.pings >= 1)
        await signal.until(lambda: len(probe.results) >= 3)
        assert probe.results[:3] == [(True, "HTTP 200")] * 3

    run_scenario(scenario)


def test_it_sends_nothing_while_the_loop_is_stalled_and_resumes_after(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="keepalive.heartbeat")

    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: server.pings >= 2)
        probe.progressing = False
        # Rounds run one after another: once the heartbeat has asked again, any ping that was
        # under way has been answered, so the count is final from here on.
        asked = probe.asked
        await signal.until(lambda: probe.asked > asked)
        pings_when_stalled = server.pings
        await signal.until(lambda: probe.asked > asked + 5)
        assert server.pings == pings_when_stalled

        probe.progressing = True
        await signal.until(lambda: server.pings > pings_when_stalled)

    run_scenario(scenario)
    messages = [record.getMessage() for record in caplog.records]
    (paused,) = [m for m in messages if "paused" in m]  # one line for the whole stall
    assert re.fullmatch(
        r"heartbeat paused url=http://127\.0\.0\.1:\d+ reason=the checking loop has stopped making progress",
        paused,
    )
    (resumed,) = [m for m in messages if "resumed" in m]
    assert re.fullmatch(r"heartbeat resumed url=http://127\.0\.0\.1:\d+", resumed)


def test_a_failing_ping_is_reported_and_logged_without_the_secret_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="keepalive.heartbeat")

    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: len(probe.results) >= 2)  # keeps going after a failure
        assert probe.results[:2] == [(False, "HTTP 500")] * 2

    run_scenario(scenario, status=500)
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert warnings
    for message in warnings:
        assert message.startswith("heartbeat failed url=http://127.0.0.1:")
        assert message.endswith(" reason=HTTP 500")
        assert "5f1c2a9e" not in message


def test_recovery_after_failed_pings_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="keepalive.heartbeat")

    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: len(probe.results) >= 1)
        server.status = 200
        await signal.until(lambda: probe.results.count((True, "HTTP 200")) >= 3)

    run_scenario(scenario, status=503)
    recovered = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
    assert len(recovered) == 1
    assert re.fullmatch(r"heartbeat recovered url=http://127\.0\.0\.1:\d+", recovered[0])


def test_a_ping_slower_than_the_timeout_is_a_failure() -> None:
    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: len(probe.results) >= 1)
        assert probe.results[0] == (False, "timed out after 0.2 s")

    run_scenario(scenario, hold=True, timeout=0.2)


def test_an_unreachable_url_is_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="keepalive.heartbeat")
    with socket.socket() as probe_socket:
        probe_socket.bind(("127.0.0.1", 0))
        port = probe_socket.getsockname()[1]
    url = f"http://127.0.0.1:{port}{SECRET_PATH}"  # nothing listens there any more

    async def main() -> list[tuple[bool, str]]:
        signal = Signal()
        results: list[tuple[bool, str]] = []

        def on_result(ok: bool, reason: str) -> None:
            results.append((ok, reason))
            signal.poke()

        stop = asyncio.Event()
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(
                run_heartbeat(url, session, lambda: None, stop, interval=0.1, on_result=on_result)
            )
            await signal.until(lambda: len(results) >= 2)
            stop.set()
            async with asyncio.timeout(WAIT):
                await task
        return results

    results = asyncio.run(main())
    ok, reason = results[0]
    assert not ok
    assert reason.startswith("ClientConnectorError: Cannot connect to host 127.0.0.1:")
    assert "5f1c2a9e" not in reason
    assert not [r for r in caplog.records if "5f1c2a9e" in r.getMessage()]


def test_it_returns_promptly_when_stopped_between_pings() -> None:
    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: len(probe.results) == 1)
        stop.set()
        async with asyncio.timeout(WAIT):  # the interval is an hour: only the stop can end this
            await task
        assert server.pings == 1

    run_scenario(scenario, interval=3600.0)


def test_it_abandons_a_hanging_ping_when_stopped() -> None:
    async def scenario(
        server: PingServer, probe: Probe, signal: Signal, task: asyncio.Task[None], stop: asyncio.Event
    ) -> None:
        await signal.until(lambda: server.pings == 1)
        stop.set()
        async with asyncio.timeout(WAIT):  # the ping timeout is an hour: only the stop can end this
            await task
        assert probe.results == []

    run_scenario(scenario, hold=True, interval=3600.0, timeout=3600.0)
