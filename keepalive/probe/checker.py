"""One health check (SPEC section 5): pick the probe for the target's kind, bound it by the
target's timeout, and return a CheckResult. Never raises (cancellation propagates).

A check passes only on HTTP 2xx with a JSON object body whose "status" is an expected value,
within the target's timeout (connect, redirects and the whole body together) and, when set,
its latency limit. Every failure carries a short reason an operator can act on.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass

from keepalive import __version__
from keepalive.probe.aiohttp_transport import AiohttpTransport
from keepalive.probe.answer import MAX_BODY, TOO_LARGE, Failure
from keepalive.probe.http_probe import MAX_REDIRECTS, HttpProbe, OwnEndpoints
from keepalive.probe.judge import judge_body, printable, slow_reason
from keepalive.probe.lean import LeanTransport
from keepalive.probe.resolver import Resolver
from keepalive.probe.transport import Probe, Transport
from keepalive.targets import Target

__all__ = [
    "MAX_BODY",
    "MAX_REDIRECTS",
    "TOO_LARGE",
    "USER_AGENT",
    "CheckResult",
    "Checker",
    "judge_body",
    "printable",
]

USER_AGENT = f"keepalive-monitor/{__version__}"


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    reason: str | None  # None when ok
    latency_ms: float | None  # time to the whole answer; None when there was no answer
    at: float  # wall-clock time the check started (epoch seconds)


class Checker:
    """Runs checks on the running event loop. Create and close it inside that loop.

    Plain-http targets on a fresh connection (the default) go through the lean transport,
    everything else through aiohttp; ``lean=False`` sends all through aiohttp (the tests run
    every reason both ways). ``own_endpoints``: the monitor's own host:port pairs, which a
    redirect may not land on. ``resolver``: host names to addresses for both transports
    (tests pass one whose lookups they control)."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        lean: bool = True,
        *,
        resolver: Resolver | None = None,
        own_endpoints: Iterable[tuple[str, int]] = (),
    ) -> None:
        self._resolver = resolver if resolver is not None else Resolver()
        transports: list[Transport] = []
        if lean:
            transports.append(LeanTransport(self._resolver, USER_AGENT))
        transports.append(AiohttpTransport(self._resolver, USER_AGENT, ssl_context))
        self._probes: tuple[Probe, ...] = (HttpProbe(transports, OwnEndpoints(own_endpoints)),)

    async def close(self) -> None:
        for probe in self._probes:
            await probe.close()
        self._resolver.close()

    def _probe(self, target: Target) -> Probe:
        for probe in self._probes:
            if probe.handles(target):
                return probe
        raise Failure("invalid URL")

    async def check(self, target: Target) -> CheckResult:
        """Check ``target`` once. Returns a result for every outcome; cancellation propagates."""
        at = time.time()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(target.timeout):
                reason = await self._probe(target).run(target)
        except Failure as exc:
            return CheckResult(False, exc.reason, None, at)
        except TimeoutError:
            return CheckResult(False, "timeout", None, at)
        except Exception as exc:  # a defect of ours: still a result, never a dead scheduler task
            return CheckResult(False, f"unexpected error: {type(exc).__name__}", None, at)
        latency = (loop.time() - started) * 1000.0
        if reason is None:
            reason = slow_reason(latency, target.max_latency_ms)
        return CheckResult(reason is None, reason, latency, at)
