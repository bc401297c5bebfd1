"""TCP targets (SPEC section 14): ``tcp://host:port`` passes when a connection opens within
the target's timeout. Nothing is sent; the connection is closed at once.

Names resolve through the probe's bounded resolver, and several addresses are raced as RFC
8305 says (as the lean HTTP client does), so the reasons are those of section 5 that apply:
``connection refused``, ``timeout``, ``DNS lookup failed``, ``connection failed: ...``.
"""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import aiohappyeyeballs

from keepalive.probe.answer import Failure
from keepalive.probe.lean import HAPPY_EYEBALLS_DELAY, reason_for_os_error
from keepalive.probe.resolver import Resolver, is_ip_literal
from keepalive.targets import Target


class TcpProbe:
    """``tcp://`` targets."""

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def handles(self, target: Target) -> bool:
        return target.url.startswith("tcp://")

    async def run(self, target: Target) -> str | None:
        parts = urlsplit(target.url)
        host, port = parts.hostname or "", parts.port or 0
        loop = asyncio.get_running_loop()
        try:
            if is_ip_literal(host):
                transport, _ = await loop.create_connection(asyncio.Protocol, host, port)
            else:
                infos = await self._resolver.resolve(host, port)
                sock = await aiohappyeyeballs.start_connection(
                    infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
                )
                try:
                    transport, _ = await loop.create_connection(asyncio.Protocol, sock=sock)
                except BaseException:
                    sock.close()
                    raise
        except socket.gaierror:
            raise Failure("DNS lookup failed") from None
        except OSError as exc:
            raise Failure(reason_for_os_error(exc)) from None
        transport.close()
        return None

    async def close(self) -> None:
        return None
