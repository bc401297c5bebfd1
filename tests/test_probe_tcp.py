"""TCP targets (SPEC section 14) against real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from keepalive.errors import ConfigError
from keepalive.probe.checker import Checker, CheckResult
from keepalive.targets import Target, load_targets_file
from tests.fakes.targets import closed_port

BASE = {"interval": 60.0, "failure_threshold": 2, "success_threshold": 1, "timeout": 5.0}


def target(url: str, timeout: float = 2.0) -> Target:
    return Target(name="t", url=url, interval=1.0, failure_threshold=1, success_threshold=1, timeout=timeout)


def check(*targets: Target) -> list[CheckResult]:
    async def run() -> list[CheckResult]:
        checker = Checker()
        try:
            return [await checker.check(t) for t in targets]
        finally:
            await checker.close()

    return asyncio.run(run())


@pytest.fixture()
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock
    sock.close()


def test_an_open_port_passes_with_a_latency(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    (result,) = check(target(f"tcp://127.0.0.1:{port}"))
    assert (result.ok, result.reason) == (True, None)
    assert result.latency_ms is not None


def test_a_host_name_resolves_through_the_checker(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    (result,) = check(target(f"tcp://localhost:{port}"))
    assert (result.ok, result.reason) == (True, None)


def test_a_closed_port_is_connection_refused() -> None:
    (result,) = check(target(f"tcp://127.0.0.1:{closed_port()}"))
    assert (result.ok, result.reason) == (False, "connection refused")


def test_an_unresolvable_host_is_a_dns_failure() -> None:
    (result,) = check(target("tcp://no-such-host.invalid:5432", timeout=10.0))
    assert result.reason == "DNS lookup failed"


def test_a_full_backlog_that_never_accepts_is_a_timeout() -> None:
    # A listening socket with a backlog of 0 that nobody accepts from: once its queue is full
    # the kernel drops further SYNs, so the connect hangs until the deadline.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(0)
    port = sock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        (result,) = check(target(f"tcp://127.0.0.1:{port}", timeout=0.5))
        assert (result.ok, result.reason) == (False, "timeout")
    finally:
        for filler in fillers:
            filler.close()
        sock.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("tcp://db", "expected tcp://host:port (a port from 1 to 65535)"),
        ("tcp://db:0", "expected tcp://host:port (a port from 1 to 65535)"),
        ("tcp://db:5432/x", "a tcp:// URL is tcp://host:port and nothing else"),
        ("tcp://db:99999", "not a valid URL (Port out of range 0-65535)"),
    ],
)
def test_a_bad_tcp_url_is_a_config_error_naming_the_target(tmp_path: Path, url: str, problem: str) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(f'[[targets]]\nname = "db"\nurl = "{url}"\n')
    with pytest.raises(ConfigError) as caught:
        load_targets_file(path, BASE)
    assert str(caught.value) == f"MONITOR_TARGETS_FILE {path}: target 'db': url={url!r} is invalid: {problem}"


def test_a_tcp_target_is_of_kind_tcp(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text('[[targets]]\nname = "db"\nurl = "tcp://127.0.0.1:5432"\n')
    (loaded,) = load_targets_file(path, BASE)
    assert (loaded.kind, loaded.public_url) == ("tcp", "tcp://127.0.0.1:5432")
