"""The endpoint's guards: the Host check (DNS rebinding), the connection cap and idle timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

import aiohttp
import pytest

from keepalive.web.app import start_web
from keepalive.web.guard import REFUSAL, allowed_names, host_allowed, split_host
from keepalive.web.render import RenderCache, Rendered
from tests.test_web import FakeView
from tests.test_web_load import BigView

HOSTNAME = socket.gethostname().lower()


@contextlib.asynccontextmanager
async def serving(view: Any = None, **options: Any) -> AsyncIterator[int]:
    runner = await start_web(view or FakeView(), "127.0.0.1", 0, **options)
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def get(port: int, path: str, host: str | None) -> tuple[int, Any]:
    headers = {} if host is None else {"Host": host}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else await response.read()
        return response.status, body


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "localhost:{port}",
        "LOCALHOST.:{port}",
        "[::1]:{port}",
        "192.0.2.7:5005",  # a second machine reaching us by one of our addresses
        "[2001:db8::7]",
        f"{HOSTNAME}:{{port}}",
        f"{socket.getfqdn()}:{{port}}",  # what a scraper elsewhere most likely uses
        "127.0.0.1",
    ],
)
def test_names_of_this_machine_and_ip_literals_are_answered(host: str) -> None:
    async def main() -> None:
        async with serving() as port:
            status, body = await get(port, "/api/status?history=0", host.format(port=port))
        assert status == 200
        assert body["monitor"]["host"] == "test-host"

    asyncio.run(main())


@pytest.mark.parametrize("path", ["/api/status", "/metrics", "/", "/static/status.js", "/nope"])
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1.nip.io:{port}"])
def test_a_foreign_name_gets_421_and_no_data(path: str, host: str) -> None:
    async def main() -> None:
        async with serving() as port:
            shown = host.format(port=port)
            status, body = await get(port, path, shown)
        assert status == 421
        assert body == {
            "error": f"Host {shown!r} is not a name of this monitor; use its address or host name"
        }

    asyncio.run(main())


def test_health_answers_under_any_name_so_a_second_monitor_can_watch_it() -> None:
    async def main() -> None:
        async with serving() as port:
            status, body = await get(port, "/health", "monitor-a.internal:5005")
        assert status == 200
        assert body["status"] == "ok"

    asyncio.run(main())


def test_a_configured_name_is_answered() -> None:
    async def main() -> None:
        async with serving(extra_host_names=("Monitor.Example.org",)) as port:
            status, _ = await get(port, "/api/status?history=0", f"monitor.example.org:{port}")
        assert status == 200

    asyncio.run(main())


def test_a_request_without_a_host_header_is_answered() -> None:
    # HTTP/1.0 tools may send no Host; a browser always does, so this is no rebinding.
    async def main() -> None:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/status?history=0 HTTP/1.0\r\n\r\n")
            answer = await reader.read()
            writer.close()
            await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.0 200 OK\r\n")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("Example.ORG:80", "example.org"),
        ("[::1]:5005", "::1"),
        ("[::1]", "::1"),
        ("10.0.0.1", "10.0.0.1"),
        ("localhost.", "localhost"),
        ("::1", "::1"),  # bare IPv6 without brackets is not valid, but it is an IP literal
    ],
)
def test_split_host(header: str, host: str) -> None:
    assert split_host(header) == host


def test_the_bound_name_is_allowed_and_a_bound_address_adds_nothing() -> None:
    assert "monitor-a.lan" in allowed_names("monitor-a.lan")
    assert allowed_names("10.1.2.3") == allowed_names("127.0.0.1")
    assert host_allowed("monitor-a.lan:5005", allowed_names("monitor-a.lan"))
    assert not host_allowed("monitor-b.lan:5005", allowed_names("monitor-a.lan"))


# ----------------------------------------------------------------------------- connections


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        select.select([], [], [], 0.02)


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset), without blocking."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(4096, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    socks = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(sock)
    return socks


def test_past_the_cap_the_longest_idle_connections_are_closed_and_health_still_answers() -> None:
    cap, flood = 16, 40

    async def main() -> None:
        async with serving(max_connections=cap, idle_timeout=120.0) as port:
            socks = await asyncio.to_thread(idle_sockets, port, flood)
            try:
                status, body = await get(port, "/health", None)
                assert (status, body["status"]) == (200, "ok")
                # The health connection took a place too: flood + 1 - cap were closed, oldest first.
                expected = set(range(flood + 1 - cap))
                await asyncio.to_thread(
                    wait_for,
                    lambda: {i for i, s in enumerate(socks) if closed_by_peer(s)} >= expected,
                    "the oldest idle connections to be closed",
                )
                assert {i for i, s in enumerate(socks) if closed_by_peer(s)} == expected
            finally:
                for sock in socks:
                    sock.close()

    asyncio.run(main())


def test_idle_connections_and_trickling_request_heads_are_closed_after_the_idle_timeout() -> None:
    async def main() -> None:
        async with serving(idle_timeout=0.5) as port:
            socks = await asyncio.to_thread(idle_sockets, port, 10)
            slow = socks[-1]
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            try:
                await asyncio.to_thread(
                    wait_for, lambda: all(closed_by_peer(s) for s in socks), "idle connections closed"
                )
                status, _ = await get(port, "/health", None)
                assert status == 200
            finally:
                for sock in socks:
                    sock.close()

    asyncio.run(main())


class HeldCache(RenderCache):
    """Holds every answer until ``release`` is set, so requests stay in flight (busy)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.waiting = 0
        self.all_waiting = asyncio.Event()
        self.expected = 0

    async def get(self, key: Hashable, source: object, build: Callable[[], Rendered]) -> Rendered:
        self.waiting += 1
        if self.waiting >= self.expected:
            self.all_waiting.set()
        await self.release.wait()
        return await super().get(key, source, build)


def test_when_every_connection_is_busy_a_newcomer_gets_503_and_the_busy_ones_finish() -> None:
    async def main() -> None:
        cache = HeldCache()
        cache.expected = 2
        async with serving(max_connections=2, cache=cache) as port, aiohttp.ClientSession() as session:

            async def scrape() -> int:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    await response.read()
                    return response.status

            busy = [asyncio.create_task(scrape()) for _ in range(2)]
            await asyncio.wait_for(cache.all_waiting.wait(), 30)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            refused = await reader.read()
            writer.close()
            await writer.wait_closed()
            assert refused == REFUSAL
            cache.release.set()
            assert await asyncio.gather(*busy) == [200, 200]

    asyncio.run(main())


TCP_CLOSE, TCP_CLOSE_WAIT = 7, 8  # linux/tcp_states.h


def tcp_state(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]


def test_a_scraper_that_never_reads_is_disconnected_after_the_send_timeout() -> None:
    view = BigView()  # a 7 MB exposition, far more than the socket buffers hold

    async def main() -> None:
        async with serving(view, send_timeout=1.0) as port:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            try:
                sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n\r\n")
                status, _ = await get(port, "/health", None)
                assert status == 200
                await asyncio.to_thread(
                    wait_for,
                    lambda: tcp_state(sock) in (TCP_CLOSE, TCP_CLOSE_WAIT),
                    "the server to drop the connection",
                )
                received = 0
                with contextlib.suppress(ConnectionResetError):
                    while chunk := sock.recv(65536):
                        received += len(chunk)
                assert received < 1_000_000
            finally:
                sock.close()

    asyncio.run(main())


def test_head_of_metrics_and_status_sends_headers_only() -> None:
    async def main() -> None:
        async with serving() as port, aiohttp.ClientSession() as session:
            for path in ("/metrics", "/api/status"):
                async with session.head(f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 200
                    assert int(response.headers["Content-Length"]) > 100
                    assert await response.read() == b""

    asyncio.run(main())
