"""The contract between a probe and an HTTP client, and the kinds of check.

A ``Transport`` fetches one URL once: no redirects followed, the answer read within the
limits of ``keepalive.probe.answer``, and every error of its own library mapped to a
``Failure`` carrying the check's reason. Two exist: ``lean.LeanTransport`` (plain http on a
fresh connection, llhttp) and ``aiohttp_transport.AiohttpTransport`` (everything else).

A ``Probe`` checks one kind of target (SPEC section 14: http today; tcp, push and log files
each as one more file) and returns the failure reason or None; it raises ``Failure`` when
there was no answer to judge. The ``Checker`` picks the probe, applies the deadline and
turns the outcome into a ``CheckResult``.
"""

from __future__ import annotations

from typing import Protocol

from keepalive.probe.answer import Answer
from keepalive.targets import Target


class Transport(Protocol):
    def handles(self, url: str, reuse: bool) -> bool:
        """Whether this transport can fetch ``url`` (``reuse``: keep-alive connections)."""
        ...

    async def fetch(self, url: str, reuse: bool, with_peer: bool = False) -> Answer:
        """GET ``url`` once; ``with_peer``: fill in the answer's peer and local addresses.
        Raises Failure only; the caller bounds the time."""
        ...

    async def close(self) -> None: ...


class Probe(Protocol):
    def handles(self, target: Target) -> bool:
        """Whether ``target`` is of this probe's kind."""
        ...

    async def run(self, target: Target) -> str | None:
        """Check ``target`` once: the failure reason, or None when healthy. Raises Failure
        when nothing could be judged (no connection, no answer); the caller bounds the time."""
        ...

    async def close(self) -> None: ...
