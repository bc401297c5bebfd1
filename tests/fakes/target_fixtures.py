"""Pytest fixtures for the misbehaving target server (registered in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.targets import TargetServer, closed_port


@pytest.fixture
def target_server() -> Iterator[TargetServer]:
    """A started ``TargetServer`` on 127.0.0.1 and a free port; every path answers ok at first."""
    with TargetServer() as server:
        yield server


@pytest.fixture
def closed_port_url() -> str:
    """A health URL on a loopback port where nothing listens: connecting is refused."""
    return f"http://127.0.0.1:{closed_port()}/health"
