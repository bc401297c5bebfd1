"""The outgoing heartbeat: a GET to a dead man's switch (healthchecks.io, Uptime Kuma push, ...).

Nothing inside the monitor can report that the monitor itself is dead, so it pings an outside
service that alerts when the pings stop. Pings are sent only while the monitor is healthy: a
monitor that answers HTTP but no longer checks anything, or can no longer store the alerts it
raises, must look dead from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import aiohttp
from yarl import URL

from keepalive.scrub import MASK, scrub

log = logging.getLogger("keepalive.heartbeat")


def _origin(url: str) -> str:
    """Scheme and host only: ping URLs carry their secret (a check uuid) in the path."""
    try:
        return str(URL(url).origin())
    except ValueError:
        return "(invalid url)"


def _clean(text: str, url: str) -> str:
    # aiohttp puts the whole URL into some exception texts (InvalidURL, redirects).
    secrets = [url]
    with contextlib.suppress(ValueError):
        parsed = URL(url)
        secrets += [parsed.raw_path_qs, parsed.raw_path, parsed.path_qs, parsed.path]
    for secret in secrets:
        if len(secret) > 1:  # "/" alone is no secret and appears in every text
            text = text.replace(secret, MASK)
    return scrub(text)


async def _ping(url: str, session: aiohttp.ClientSession, timeout: float) -> tuple[bool, str]:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return 200 <= response.status < 300, f"HTTP {response.status}"
    except TimeoutError:
        return False, f"timed out after {timeout:g} s"
    except Exception as exc:  # a broken heartbeat must never take the monitor down with it
        return False, f"{type(exc).__name__}: {exc}"


async def _ping_unless_stopped(
    url: str, session: aiohttp.ClientSession, timeout: float, stop: asyncio.Event
) -> tuple[bool, str] | None:
    """The ping's result, or None when ``stop`` was set first (the ping is then abandoned)."""
    ping = asyncio.create_task(_ping(url, session, timeout))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait((ping, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        ping.cancel()
        stopped.cancel()
        await asyncio.gather(ping, stopped, return_exceptions=True)
    return None if ping.cancelled() else ping.result()


async def run_heartbeat(
    url: str,
    session: aiohttp.ClientSession,
    problem: Callable[[], str | None],
    stop: asyncio.Event,
    interval: float = 60.0,
    timeout: float = 10.0,
    on_result: Callable[[bool, str], None] | None = None,
) -> None:
    """GET ``url`` at once and then every ``interval`` seconds while ``problem()`` is None, i.e.
    while the monitor is healthy (checks progressing, alerts can be stored, state is saved).

    Contract: returns promptly once ``stop`` is set (an unfinished ping is abandoned); a failed
    ping (non-2xx answer, timeout, connection error) is logged and reported to ``on_result`` as
    ``(False, reason)`` but never raised; while unhealthy no ping is sent and one line (with the
    problem) is logged for the whole spell. Log lines and reasons show only the URL's scheme and host.
    """
    where = _origin(url)
    loop = asyncio.get_running_loop()
    paused = False
    failing = False
    while not stop.is_set():
        started = loop.time()
        why = problem()
        if why is None:
            if paused:
                paused = False
                log.info("heartbeat resumed url=%s", where)
            result = await _ping_unless_stopped(url, session, timeout, stop)
            if result is None:
                return
            ok, reason = result[0], _clean(result[1], url)
            if not ok:
                log.warning("heartbeat failed url=%s reason=%s", where, reason)
            elif failing:
                log.info("heartbeat recovered url=%s", where)
            failing = not ok
            if on_result is not None:
                on_result(ok, reason)
        elif not paused:
            paused = True
            log.warning("heartbeat paused url=%s reason=%s", where, why)
        # Measured from the start of the round so a slow ping does not stretch the period.
        remaining = interval - (loop.time() - started)
        if remaining > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), remaining)
