"""Runs a target's ``on_down`` (SPEC 15): the monitor's own hands, kept on a short leash.

Contract of one run:
- an argument list, executed directly (no shell, so nothing in a reason or a name is ever
  interpreted), with stdin closed, in a new session (its own process group), off the event
  loop: asyncio subprocesses, output read by a protocol that keeps only the last
  ``MAX_LINES`` lines (each at most ``MAX_LINE`` characters, scrubbed of secrets);
- ``remediation_timeout`` seconds, then SIGTERM to the whole group and, ``KILL_GRACE``
  seconds later, SIGKILL to it; the child is always waited for (no zombie);
- the monitor's environment minus every secret, plus ``KEEPALIVE_TARGET``, ``KEEPALIVE_URL``
  (without password), ``KEEPALIVE_REASON``, ``KEEPALIVE_FAILED_CHECKS``, ``KEEPALIVE_TRIGGER``;
- never two runs of one target at once; automatic runs at most ``max_remediations`` per
  outage and never while the target's DOWN is held (silence, maintenance, dependency);
- ``remediation_started`` / ``remediation_finished`` (or ``remediation_skipped``) events,
  each naming who asked (``trigger``), what ran and how it ended.

When the command exits, whatever it started in the background keeps running (a restart
script's daemon is the point of it); only a timeout or a monitor stop kills the group.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from keepalive.actions.result import (
    OUTCOME_EXITED,
    OUTCOME_INTERRUPTED,
    OUTCOME_NOT_STARTED,
    OUTCOME_TIMEOUT,
    RemediationResult,
    command_line,
)
from keepalive.alerts import Alert, AlertKind
from keepalive.engine.announcer import Reporter
from keepalive.scrub import scrub
from keepalive.targets import Target

MAX_LINES = 20
MAX_LINE = 300  # characters kept of one output line
# A line without a newline is cut here: a command printing one endless line stays bounded.
MAX_PENDING = 4096
# Between SIGTERM and SIGKILL to a group that outlived its timeout.
KILL_GRACE = 2.0
# After the command exited, its output pipe may be held open by something it started in the
# background; what arrives within this long is still read, then the pipe is closed.
DRAIN_AFTER_EXIT = 0.5
MAX_REASON_ENV = 1000
# Environment variables that hold credentials by their name alone, whatever their value.
_SECRET_NAME = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|PRIVATE_KEY|API_KEY)", re.IGNORECASE)

log = logging.getLogger("keepalive.remediation")


class HoldLookup(Protocol):
    """Whether a target's DOWN is held now (SPEC 13): keepalive.policy.holds.Holds."""

    def is_held(self, name: str) -> bool | str | None:
        """True (or why, e.g. "silence 3f2a") while ``name``'s DOWN is held."""
        ...


class HoldsNothing:
    """No silences, maintenance windows or dependencies."""

    def is_held(self, name: str) -> bool | str | None:
        return None


def held_because(holds: HoldLookup, name: str) -> str | None:
    """Why ``name``'s DOWN is held, in words, or None when it is not."""
    held = holds.is_held(name)
    if not held:
        return None
    if isinstance(held, str):
        return held
    why_held = getattr(holds, "why_held", None)
    why = why_held(name) if callable(why_held) else None
    if isinstance(why, tuple) and why and isinstance(why[0], str):
        return why[0]
    return "held by a silence, a maintenance window or a dependency"


def clean_environment(environ: Mapping[str, str], secret_names: Iterable[str] = ()) -> dict[str, str]:
    """``environ`` without anything secret: the named settings, any variable whose name says it
    holds a credential, and any whose value contains a registered secret or a bot token."""
    named = set(secret_names)
    clean = {}
    for key, value in environ.items():
        if key in named or _SECRET_NAME.search(key) or key.startswith("KEEPALIVE_"):
            continue
        if scrub(value) != value:
            continue
        clean[key] = value
    return clean


class OutputTail:
    """The last ``MAX_LINES`` lines of a byte stream, bounded whatever the stream does."""

    def __init__(self, lines: int = MAX_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=lines)
        self._pending = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> None:
        if self._skipping:
            # The rest of a line already kept in part: dropped up to its end.
            cut = data.find(b"\n")
            if cut < 0:
                return
            self._skipping = False
            data = data[cut + 1 :]
        self._pending += data
        while True:
            cut = self._pending.find(b"\n")
            if cut < 0:
                if len(self._pending) > MAX_PENDING:
                    self._keep(bytes(self._pending[:MAX_PENDING]))
                    del self._pending[:]
                    self._skipping = True
                return
            self._keep(bytes(self._pending[:cut]))
            del self._pending[: cut + 1]

    def _keep(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        text = "".join(c if c.isprintable() else " " for c in text)
        if len(text) > MAX_LINE:
            text = text[: MAX_LINE - 1] + "…"
        self._lines.append(text)

    def lines(self) -> tuple[str, ...]:
        rest = [bytes(self._pending)] if self._pending else []
        if rest:
            self._keep(rest[0])
            del self._pending[:]
        # Scrubbed as late as possible: a secret registered meanwhile is masked too.
        return tuple(scrub(line) for line in self._lines)


class _TailProtocol(asyncio.Protocol):
    def __init__(self, tail: OutputTail) -> None:
        self.tail = tail
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.tail.feed(data)

    def eof_received(self) -> bool | None:
        self.closed.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


@dataclass(frozen=True, slots=True)
class Request:
    target: Target
    trigger: str
    reason: str
    failed_checks: int


class Remediator:
    """Starts, bounds and reports remediation runs; lives on the event loop.

    ``lookup`` finds a target by name (the running configuration); ``on_result`` is told each
    result (the engine shows it on the page and in the target's next alert)."""

    def __init__(
        self,
        reporter: Reporter,
        lookup: Callable[[str], Target | None],
        *,
        holds: HoldLookup | None = None,
        environ: Mapping[str, str] | None = None,
        secret_names: Iterable[str] = (),
        on_result: Callable[[RemediationResult], None] | None = None,
        clock: Callable[[], float] = time.time,
        kill_grace: float = KILL_GRACE,
    ) -> None:
        self.reporter = reporter
        self._lookup = lookup
        self.holds: HoldLookup = holds if holds is not None else HoldsNothing()
        self._environ = dict(os.environ if environ is None else environ)
        self._secret_names = frozenset(secret_names)
        self.on_result = on_result
        self._clock = clock
        self._kill_grace = kill_grace
        self._running: dict[str, asyncio.Task[RemediationResult]] = {}
        self._running_requests: dict[str, Request] = {}
        self._told_early: set[str] = set()
        self._groups: dict[str, int] = {}  # target -> process group of its run
        # target -> (since of the outage, automatic runs in it)
        self._outages: dict[str, tuple[float, int]] = {}
        self.last: dict[str, RemediationResult] = {}
        self._notes: dict[str, RemediationResult] = {}  # not yet told in an alert
        self._stopping: str | None = None
        self._interrupted: set[str] = set()

    # ------------------------------------------------------------------ triggers

    def after_stored(self, alerts: Sequence[Alert]) -> None:
        """The outbox now holds ``alerts``: each DOWN of a target with ``on_down`` may start it."""
        for alert in alerts:
            if alert.kind is AlertKind.DOWN:
                self._on_down(alert)

    def _on_down(self, alert: Alert) -> None:
        target = self._lookup(alert.target)
        if target is None or not target.on_down or self._stopping is not None:
            return
        name = target.name
        held = held_because(self.holds, name)
        if held is not None:
            self._skipped(name, "monitor", f"its DOWN is held: {held}")
            return
        if name in self._running:
            self._skipped(name, "monitor", "a run is still going")
            return
        since, runs = self._outages.get(name, (alert.since, 0))
        if since != alert.since:
            runs = 0
        if runs >= target.max_remediations:
            self._skipped(
                name, "monitor", f"max_remediations={target.max_remediations} reached in this outage"
            )
            return
        self._outages[name] = (alert.since, runs + 1)
        self._start(Request(target, "monitor", alert.reason, alert.failed_checks))

    def run_now(self, name: str, trigger: str) -> asyncio.Task[RemediationResult]:
        """Run ``name``'s ``on_down`` on demand (API, command line, chat), held or not.

        Raises LookupError (no such target), ValueError (it has no on_down) or RuntimeError
        (a run of it is going, or the monitor is stopping)."""
        target = self.find(name)
        if target is None:
            raise LookupError(f"no target named {name!r}")
        if not target.on_down:
            raise ValueError(f"target {target.name!r} has no on_down command")
        if self._stopping is not None:
            raise RuntimeError("the monitor is stopping")
        if target.name in self._running:
            raise RuntimeError(f"{target.name!r} is being remediated already")
        return self._start(Request(target, trigger, "requested by " + trigger, 0))

    def find(self, name: str) -> Target | None:
        """A target by name; names match without regard to case."""
        return self._lookup(name)

    def running(self, name: str) -> bool:
        return name in self._running

    def take_note(self, name: str, kind: AlertKind) -> str:
        """What ``name``'s next alert says about the last run since its previous alert."""
        running = self._running_requests.get(name)
        if running is not None and kind is AlertKind.RECOVERED:
            # Back before the command ended (a restart script still waiting for it, say).
            command = command_line(running.target.on_down)
            self._told_early.add(name)  # its result is not news for the next outage
            return f"came back while `{command}` was running (started by {running.trigger})"
        result = self._notes.pop(name, None)
        if result is None:
            return ""
        if kind is AlertKind.RECOVERED:
            return f"came back after the restart: {result.summary()}"
        return result.summary()

    # ------------------------------------------------------------------ one run

    def _start(self, request: Request) -> asyncio.Task[RemediationResult]:
        name = request.target.name
        task = asyncio.get_running_loop().create_task(self._run(request), name=f"remediate:{name}")
        self._running[name] = task
        self._running_requests[name] = request
        return task

    def _skipped(self, name: str, trigger: str, why: str) -> None:
        self.reporter.report(
            "remediation_skipped", "remediation skipped", target=name, trigger=trigger, why=why
        )

    def environment(self, request: Request) -> dict[str, str]:
        env = clean_environment(self._environ, self._secret_names)
        reason = scrub(request.reason)
        env.update(
            KEEPALIVE_TARGET=request.target.name,
            KEEPALIVE_URL=request.target.public_url,
            KEEPALIVE_REASON=reason[:MAX_REASON_ENV],
            KEEPALIVE_FAILED_CHECKS=str(request.failed_checks),
            KEEPALIVE_TRIGGER=request.trigger,
        )
        return env

    async def _run(self, request: Request) -> RemediationResult:
        target = request.target
        name = target.name
        command = command_line(target.on_down)
        started_at = self._clock()
        self.reporter.report(
            "remediation_started",
            "remediation started",
            logging.WARNING,
            target=name,
            command=command,
            trigger=request.trigger,
            reason=scrub(request.reason),
            timeout=target.remediation_timeout,
        )
        try:
            outcome, code, error, lines, duration = await self._execute(request)
        except Exception as exc:  # a bug here must still end in one finished event
            log.exception("remediation of %r failed", name)
            outcome, code, error, lines, duration = OUTCOME_NOT_STARTED, None, scrub(str(exc)), (), 0.0
        finally:
            self._running.pop(name, None)
            self._running_requests.pop(name, None)
            self._groups.pop(name, None)
        result = RemediationResult(
            target=name,
            command=command,
            trigger=request.trigger,
            started_at=started_at,
            duration=duration,
            outcome=outcome,
            exit_code=code,
            error=error,
            output=lines,
        )
        self.last[name] = result
        if name in self._told_early:
            self._told_early.discard(name)
        else:
            self._notes[name] = result
        self.reporter.report(
            "remediation_finished",
            "remediation finished",
            logging.INFO if result.ok else logging.WARNING,
            target=name,
            command=command,
            trigger=request.trigger,
            outcome=outcome,
            exit_code=code,
            duration_seconds=round(duration, 3),
            error=error or None,
            output=list(lines),
        )
        if self.on_result is not None:
            try:
                self.on_result(result)
            except Exception:
                log.exception("showing the remediation result of %r failed", name)
        return result

    async def _execute(self, request: Request) -> tuple[str, int | None, str, tuple[str, ...], float]:
        loop = asyncio.get_running_loop()
        target = request.target
        tail = OutputTail()
        read_fd, write_fd = os.pipe()
        began = time.monotonic()
        try:
            process = await asyncio.create_subprocess_exec(
                *target.on_down,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=write_fd,
                env=self.environment(request),
                start_new_session=True,  # its own process group, killed as one on timeout
                close_fds=True,
            )
        except (OSError, ValueError) as exc:
            os.close(read_fd)
            os.close(write_fd)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return OUTCOME_NOT_STARTED, None, scrub(f"{reason}: {target.on_down[0]}"), (), 0.0
        os.close(write_fd)
        self._groups[target.name] = process.pid
        transport, protocol = await loop.connect_read_pipe(
            lambda: _TailProtocol(tail), os.fdopen(read_fd, "rb", buffering=0)
        )
        outcome, error = OUTCOME_EXITED, ""
        try:
            try:
                await asyncio.wait_for(process.wait(), target.remediation_timeout)
            except TimeoutError:
                outcome = OUTCOME_TIMEOUT
                error = f"no exit within remediation_timeout={target.remediation_timeout:g} s"
                await self._kill_group(process)
            except asyncio.CancelledError:
                # The monitor stops and did not wait for it (see ``stop``).
                await asyncio.shield(self._kill_group(process))
                raise
            with suppress(TimeoutError):
                await asyncio.wait_for(protocol.closed.wait(), DRAIN_AFTER_EXIT)
        finally:
            transport.close()
        if target.name in self._interrupted:
            outcome, error = OUTCOME_INTERRUPTED, "the monitor stopped; its process group was killed"
        code = process.returncode
        return outcome, code, error, tail.lines(), time.monotonic() - began

    async def _kill_group(self, process: asyncio.subprocess.Process) -> None:
        """SIGTERM the whole group, SIGKILL it after the grace, and reap the child."""
        for sig, wait in ((signal.SIGTERM, self._kill_grace), (signal.SIGKILL, None)):
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)
            if wait is None:
                break
            with suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), wait)
                # The leader is gone; what it left in the group goes with the SIGKILL below.
        await process.wait()

    # ------------------------------------------------------------------ stop

    async def stop(self, grace: float) -> None:
        """The monitor stops: runs still going get ``grace`` seconds to finish, then their
        process groups are killed (recorded as ``interrupted``)."""
        self._stopping = "the monitor stopped"
        tasks = list(self._running.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=max(0.0, grace))
        for name, pgid in list(self._groups.items()):
            if self._running.get(name) in pending:
                self._interrupted.add(name)
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, signal.SIGTERM)
        if pending:
            _, still = await asyncio.wait(pending, timeout=self._kill_grace + 1.0)
            for name, pgid in list(self._groups.items()):
                if self._running.get(name) in still:
                    with suppress(ProcessLookupError, PermissionError):
                        os.killpg(pgid, signal.SIGKILL)
            if still:
                await asyncio.wait(still, timeout=5.0)
