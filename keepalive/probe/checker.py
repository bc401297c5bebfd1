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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from keepalive import __version__
from keepalive.probe.aiohttp_transport import AiohttpTransport
from keepalive.probe.answer import MAX_BODY, TOO_LARGE, Failure
from keepalive.probe.detail import Detail
from keepalive.probe.http_probe import MAX_REDIRECTS, HttpProbe, OwnEndpoints
from keepalive.probe.judge import judge_body, printable, slow_reason
from keepalive.probe.kinds import ca_context
from keepalive.probe.lean import LeanTransport
from keepalive.probe.logfile import LogProbe
from keepalive.probe.push import PushBoard, PushProbe
from keepalive.probe.resolver import Resolver
from keepalive.probe.tcp import TcpProbe
from keepalive.probe.tls import CertWatch
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


class CheckResult(NamedTuple):
    """One check's outcome. A NamedTuple for the reason Answer is one (made once per check)."""

    ok: bool
    reason: str | None  # None when ok
    latency_ms: float | None  # time to the whole answer; None when there was no answer
    at: float  # wall-clock time the check started (epoch seconds)
    detail: Detail | None = None  # what a kind learned besides the verdict (keepalive.probe.detail)


class Checker:
    """Runs checks on the running event loop. Create and close it inside that loop.

    Plain-http targets on a fresh connection (the default) go through the lean transport,
    everything else through aiohttp; ``lean=False`` sends all through aiohttp (the tests run
    every reason both ways). ``own_endpoints``: the monitor's own host:port pairs, which a
    redirect may not land on. ``resolver``: host names to addresses for both transports
    (tests pass one whose lookups they control).

    Other kinds (SPEC 14): ``pushes`` is the board the /ping routes write (one of its own
    when not given), ``state_dir`` where log targets keep their read positions (none: not
    kept), ``clock`` the wall clock push silences and log windows are measured with."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        lean: bool = True,
        *,
        resolver: Resolver | None = None,
        own_endpoints: Iterable[tuple[str, int]] = (),
        pushes: PushBoard | None = None,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._resolver = resolver if resolver is not None else Resolver()
        self._ssl_context = ssl_context
        self._own = OwnEndpoints(own_endpoints)
        transports: list[Transport] = []
        if lean:
            transports.append(LeanTransport(self._resolver, USER_AGENT))
        transports.append(AiohttpTransport(self._resolver, USER_AGENT, ssl_context))
        self.pushes = pushes if pushes is not None else PushBoard(clock)
        self._probes: tuple[Probe, ...] = (
            HttpProbe(transports, self._own),  # first: the common kind pays for no other
            TcpProbe(self._resolver),
            PushProbe(self.pushes, clock),
            LogProbe(state_dir, clock),
        )
        # https targets with tls_ca_file: one aiohttp transport per CA file, made on first use.
        self._ca_probes: dict[str, HttpProbe] = {}
        self._contexts: dict[str, ssl.SSLContext] = {}
        self.certs = CertWatch(self._resolver, self._context_for)

    async def close(self) -> None:
        for probe in (*self._probes, *self._ca_probes.values()):
            await probe.close()
        self._resolver.close()

    def _context_for(self, target: Target) -> ssl.SSLContext:
        key = target.tls_ca_file or ""
        context = self._contexts.get(key)
        if context is None:
            if key:
                context = ca_context(key)
            else:
                context = self._ssl_context if self._ssl_context is not None else ssl.create_default_context()
            self._contexts[key] = context
        return context

    def _probe(self, target: Target) -> Probe:
        if target.tls_ca_file is not None:
            with_ca = self._ca_probes.get(target.tls_ca_file)
            if with_ca is None:
                transport = AiohttpTransport(self._resolver, USER_AGENT, self._context_for(target))
                with_ca = self._ca_probes[target.tls_ca_file] = HttpProbe([transport], self._own)
            return with_ca
        for probe in self._probes:
            if probe.handles(target):
                return probe
        raise Failure("invalid URL")

    def _detail(self, probe: Probe, target: Target) -> Detail | None:
        if isinstance(probe, PushProbe | LogProbe):
            return probe.detail(target)
        if self.certs.wants(target):
            return self.certs.detail(target)
        return None

    async def check(self, target: Target) -> CheckResult:
        """Check ``target`` once. Returns a result for every outcome; cancellation propagates."""
        at = time.time()
        loop = asyncio.get_running_loop()
        started = loop.time()
        probe: Probe | None = None
        try:
            async with asyncio.timeout(target.timeout):
                probe = self._probe(target)
                reason = await probe.run(target)
        except Failure as exc:
            return await self._result(False, exc.reason, None, at, probe, target)
        except TimeoutError:
            return await self._result(False, "timeout", None, at, probe, target)
        except Exception as exc:  # a defect of ours: still a result, never a dead scheduler task
            return CheckResult(False, f"unexpected error: {type(exc).__name__}", None, at)
        latency = (loop.time() - started) * 1000.0
        if reason is None:
            reason = slow_reason(latency, target.max_latency_ms)
        if probe is self._probes[0] and target.tls_ca_file is None and not target.url.startswith("https"):
            return CheckResult(reason is None, reason, latency, at)  # plain http: nothing more
        return await self._result(reason is None, reason, latency, at, probe, target)

    async def _result(
        self,
        ok: bool,
        reason: str | None,
        latency: float | None,
        at: float,
        probe: Probe | None,
        target: Target,
    ) -> CheckResult:
        """The result, with what the kind learned; for https, the certificate, looked at once
        an hour (within the target's timeout again: a second, bounded handshake)."""
        if probe is None:
            return CheckResult(ok, reason, latency, at)
        if self.certs.wants(target):
            if reason is not None and reason.startswith("TLS error"):
                self.certs.forget(target)  # replaced or broken: look again once it passes
            elif self.certs.due(target):
                try:
                    async with asyncio.timeout(target.timeout):
                        await self.certs.look(target)
                except TimeoutError:
                    pass
        return CheckResult(ok, reason, latency, at, self._detail(probe, target))
