"""Name resolution is bounded and isolated (issue 9 defect 4), and a host's dead first address
does not fail its check (issue 9 defect 5). The lookup function is passed in, so a name can be
made to hang; both transports resolve through the same Resolver."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Sequence

import pytest

from keepalive.probe.checker import Checker, CheckResult
from keepalive.probe.resolver import AddrInfo, Resolver
from keepalive.targets import Target
from tests.fakes.raw_server import BlackHole, ScriptedServer

OK_ANSWER = b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"status": "ok"}'


def target(url: str, timeout: float = 5.0) -> Target:
    return Target(name=url, url=url, interval=1.0, failure_threshold=1, success_threshold=1, timeout=timeout)


def v4(port: int, address: str = "127.0.0.1") -> AddrInfo:
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))


class FakeDns:
    """Names ending in ``.dead.test`` hang until ``release`` is set; ``missing.test`` does not
    exist; every other name resolves to ``answers[name]``. Counts lookups per name."""

    def __init__(self, answers: dict[str, list[AddrInfo]]) -> None:
        self.answers = answers
        self.release = threading.Event()
        self.hanging = threading.Event()  # set when a lookup starts to hang
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, host: str, port: int) -> Sequence[AddrInfo]:
        with self._lock:
            self.calls[host] = self.calls.get(host, 0) + 1
        if host.endswith(".dead.test"):
            self.hanging.set()
            self.release.wait()
            raise socket.gaierror(socket.EAI_AGAIN, "temporary failure")
        if host == "missing.test":
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        return self.answers[host]


@pytest.fixture(params=[True, False], ids=["lean", "aiohttp"])
def lean(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_names_that_hang_never_starve_a_healthy_name(lean: bool) -> None:
    async def run(dns: FakeDns) -> tuple[list[CheckResult], CheckResult, list[CheckResult]]:
        async with ScriptedServer([OK_ANSWER]) as server:
            dns.answers["live.test"] = [v4(server.port)]
            # Two threads in all; six different names hang, each longer than a lookup may take.
            resolver = Resolver(dns, max_threads=2, lookup_timeout=0.2)
            checker = Checker(lean=lean, resolver=resolver)
            try:
                dead = [target(f"http://n{i}.dead.test/health") for i in range(6)]
                first = list(await asyncio.gather(*(checker.check(t) for t in dead)))
                live = await checker.check(target("http://live.test/health"))
                again = list(await asyncio.gather(*(checker.check(t) for t in dead)))
            finally:
                await checker.close()
        return first, live, again

    dns = FakeDns({})
    try:
        first, live, again = asyncio.run(run(dns))
    finally:
        dns.release.set()
    assert [r.reason for r in first] == ["DNS lookup failed"] * 6
    assert live.ok, live.reason
    # While their threads still hang, the dead names fail at once, without a new thread each.
    assert [r.reason for r in again] == ["DNS lookup failed"] * 6
    assert {name: count for name, count in dns.calls.items() if "dead" in name} == {
        f"n{i}.dead.test": 1 for i in range(6)
    }


def test_concurrent_checks_of_one_name_share_one_lookup(lean: bool) -> None:
    async def run(dns: FakeDns) -> list[CheckResult]:
        async with ScriptedServer([OK_ANSWER]) as server:
            dns.answers["shared.test"] = [v4(server.port)]
            checker = Checker(lean=lean, resolver=Resolver(dns))
            try:
                url = target("http://shared.test/health")
                return list(await asyncio.gather(*(checker.check(url) for _ in range(5))))
            finally:
                await checker.close()

    dns = FakeDns({})
    results = asyncio.run(run(dns))
    assert [r.reason for r in results] == [None] * 5
    assert dns.calls == {"shared.test": 1}


def test_a_failed_lookup_is_kept_for_the_negative_ttl() -> None:
    now = [1000.0]

    async def run(dns: FakeDns) -> list[str | None]:
        resolver = Resolver(dns, negative_ttl=10.0, clock=lambda: now[0])
        checker = Checker(resolver=resolver)
        reasons = []
        try:
            for advance in (0.0, 5.0, 6.0):  # at 0 s, 5 s (kept), 11 s (expired: asked again)
                now[0] += advance
                reasons.append((await checker.check(target("http://missing.test/health"))).reason)
        finally:
            await checker.close()
        return reasons

    dns = FakeDns({})
    assert asyncio.run(run(dns)) == ["DNS lookup failed"] * 3
    assert dns.calls == {"missing.test": 2}


def test_close_is_prompt_while_a_lookup_hangs() -> None:
    async def run(dns: FakeDns) -> CheckResult | None:
        checker = Checker(resolver=Resolver(dns))  # the default lookup_timeout: 5 s
        task = asyncio.create_task(checker.check(target("http://one.dead.test/health", timeout=60.0)))
        assert await asyncio.to_thread(dns.hanging.wait, 30.0)  # the lookup thread hangs now
        task.cancel()  # what the engine does to running checks at stop
        await checker.close()
        try:
            return await task
        except asyncio.CancelledError:
            return None

    dns = FakeDns({})
    try:
        # asyncio.run returns (and closes its loop) while the lookup thread still hangs.
        assert asyncio.run(run(dns)) is None
        assert not dns.release.is_set()
        assert dns.calls == {"one.dead.test": 1}
    finally:
        dns.release.set()


def test_a_dead_first_address_does_not_fail_the_check(lean: bool) -> None:
    async def run(dns: FakeDns) -> CheckResult:
        hole = BlackHole()
        try:
            async with ScriptedServer([OK_ANSWER]) as server:
                # The first address drops every SYN (as broken IPv6 or a dead round-robin node
                # does); the second answers. A sequential client would time out on the first.
                dns.answers["two.test"] = [v4(hole.port), v4(server.port)]
                checker = Checker(lean=lean, resolver=Resolver(dns))
                try:
                    return await checker.check(target("http://two.test/health", timeout=10.0))
                finally:
                    await checker.close()
        finally:
            hole.close()

    result = asyncio.run(run(FakeDns({})))
    assert result.ok, result.reason
