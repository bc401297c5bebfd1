"""A raw loopback TCP server that answers every request with scripted bytes, for the probe's
wire-level tests (both transports fed the same bytes) and hostile targets.

It runs on the test's own event loop::

    async with ScriptedServer([b"HTTP/1.1 200 OK\\r\\n", b"Content-Length: 16\\r\\n\\r\\n", body]) as srv:
        await checker.check(target(srv.url()))

``parts`` are written one by one (so the client sees them in separate reads); then, with
``endless``, ``endless(i)`` is written for i = 0, 1, 2 ... until the client closes (a hostile
target: header lines forever, 100 Continue forever, 1-byte chunks). After that the server closes,
or with ``hold_open`` waits for the client to close first (a server ignoring
``Connection: close``). ``sent`` counts the bytes written, ``requests`` the requests read.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any


class ScriptedServer:
    def __init__(
        self,
        parts: Sequence[bytes] = (),
        *,
        endless: Callable[[int], bytes] | None = None,
        hold_open: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.parts = list(parts)
        self.endless = endless
        self.hold_open = hold_open
        self.host = host
        self._port = port
        self.sent = 0
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "/health", host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        # Handlers end once their client has closed; wait for that, then stop any left.
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            for part in self.parts:
                await self._write(writer, part)
            if self.endless is not None:
                index = 0
                while not writer.is_closing() and not reader.at_eof():
                    await self._write(writer, self.endless(index))
                    index += 1
            if self.hold_open:
                await reader.read()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass  # stopped by __aexit__: end quietly (asyncio's stream callback logs a cancelled task)
        finally:
            self._handlers.discard(task)
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)
        # Let the client read each part on its own (one part, one read).
        await asyncio.sleep(0)


class BlackHole:
    """A listening socket whose accept queue is full and never drained: the kernel drops
    further SYNs, so a connect to it hangs (a dead address that answers nothing)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((host, port))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        # listen(0) keeps one connection waiting; two more make sure the queue is full.
        for _ in range(3):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect_ex((host, self.port))
            self._fillers.append(filler)

    def close(self) -> None:
        for sock in self._fillers:
            sock.close()
        self._listener.close()
