"""The one protocol every system under test implements, and the systems' names."""

from __future__ import annotations

from typing import Any, Protocol

from bench.context import Context

# Every system but ours, in the order the report sets them beside ours.
PEERS = ("blackbox", "monit")


class Runner(Protocol):
    """Runs one system at one size and returns its figures (bench/README.md says what each means).

    A system that is not installed returns ``{"system": ..., "skipped": why}``; a failure raises,
    and the bench records it as that run's error. Every process a runner starts is stopped
    before it returns, on every path."""

    system: str

    def run(self, ctx: Context, size: int, interval: float) -> dict[str, Any]: ...
