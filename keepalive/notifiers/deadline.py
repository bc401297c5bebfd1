"""A total time limit for one send, and HTTP answers read with a size cap.

requests' and smtplib's timeouts bound each read, not the whole exchange: a server that
trickles one byte every few seconds (a status line, ``220-`` greeting lines) never trips them
and holds the sending thread for minutes. A ``Deadline`` shuts the sockets it watches down
when it expires, which ends any blocked read at once; the channel then reports the deadline.

For requests, ``DeadlineAdapter`` (mounted on the session) makes every connection it opens
register its socket with the deadline active in the sending thread (``Deadline.active``).
"""

from __future__ import annotations

import errno
import heapq
import itertools
import socket
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_current = threading.local()


class AnswerTooLarge(Exception):
    """The server's answer went past the cap."""


class _Watchdog:
    """One thread for every deadline in the process: a thread per send would double the
    threads, and failing to start one (the very exhaustion these limits guard against) must
    not turn into a failed delivery."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, at: float, deadline: Deadline) -> None:
        """Expire ``deadline`` at monotonic time ``at``; raises OSError if no thread can run."""
        with self._changed:
            heapq.heappush(self._heap, (at, next(self._order), deadline))
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="send-deadlines", daemon=True)
                try:
                    thread.start()
                except RuntimeError as exc:  # "can't start new thread"
                    self._heap.clear()
                    raise OSError(errno.EAGAIN, f"cannot start the deadline watchdog: {exc}") from None
                self._thread = thread
            self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)  # the send ended in time
                if not self._heap:
                    self._changed.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
            due.expire()


_WATCHDOG = _Watchdog()


class Deadline:
    """``with Deadline(seconds) as deadline:`` - at expiry, every watched socket is shut down."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._closers: list[Callable[[], None]] = []
        self._expired = False
        self.finished = False  # the send ended; the watchdog forgets this deadline

    @property
    def expired(self) -> bool:
        with self._lock:
            return self._expired

    def watch(self, closer: Callable[[], None]) -> None:
        """Call ``closer`` at expiry (at once when already expired)."""
        with self._lock:
            if not self._expired:
                self._closers.append(closer)
                return
        with suppress(OSError):
            closer()

    def watch_socket(self, owner: Any) -> None:
        """Shut down ``owner.sock`` at expiry, whichever socket it holds then (STARTTLS and
        TLS wrapping replace it), as long as ``owner`` still serves this deadline's send.

        A pooled HTTP connection object outlives the send: after this send failed, another
        sending thread may take it from the pool and connect it again under its own deadline,
        before this deadline's later closers ran. Each registration marks the object with its
        deadline, before any new socket is made; the closer reads the socket first and then
        checks the mark, so a socket it shuts down was never one of a later send's."""
        try:
            owner._keepalive_deadline = self
            marked = True
        except AttributeError:  # an object that takes no attributes: watched unconditionally
            marked = False

        def close() -> None:
            sock = getattr(owner, "sock", None)
            if not marked or getattr(owner, "_keepalive_deadline", None) is self:
                shutdown(sock)

        self.watch(close)

    def expire(self) -> None:
        """End the send now: shut down every watched socket.

        The closers run under the lock, so the send's ``__exit__`` waits for the last of them.
        Before, the first shutdown could end the send, the next send could reuse the same pooled
        connection object with a new socket, and a later closer of this deadline (each
        connection registers on connect and on every request) shut that new socket down: the
        next send failed with "Remote end closed connection without response". (Another
        thread's send taking the object is ruled out in ``watch_socket``.) A closer must never
        call back into this deadline: it runs under the lock."""
        with self._lock:
            if self.finished:
                return
            self._expired = True
            closers, self._closers = self._closers, []
            for closer in closers:
                with suppress(OSError):
                    closer()  # socket.shutdown: never blocks

    def __enter__(self) -> Deadline:
        _WATCHDOG.add(time.monotonic() + self.seconds, self)
        _current.deadline = self
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with self._lock:
            self.finished = True
            self._closers = []
        _current.deadline = None

    @staticmethod
    def active() -> Deadline | None:
        """The deadline of the send running in this thread, if any."""
        found = getattr(_current, "deadline", None)
        return found if isinstance(found, Deadline) else None


def shutdown(sock: Any) -> None:
    """End every blocked read and write on ``sock`` (a plain or TLS socket, or None)."""
    if isinstance(sock, socket.socket):
        sock.shutdown(socket.SHUT_RDWR)


class _Watched:
    """Mixin for urllib3 connections: register with the thread's deadline on every use."""

    def _register(self) -> None:
        deadline = Deadline.active()
        if deadline is not None:
            deadline.watch_socket(self)

    def connect(self) -> None:
        self._register()
        super().connect()  # type: ignore[misc]

    def request(self, *args: Any, **kwargs: Any) -> None:
        # A reused keep-alive connection is not connected again: register it here too.
        self._register()
        super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(_Watched, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS: dict[str, type[HTTPConnectionPool]] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """A requests adapter whose connections obey the sending thread's ``Deadline``."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        # Through HTTPS_PROXY too: the proxy's manager builds its own pools.
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def read_capped(response: requests.Response, cap: int) -> bytes:
    """The whole body of a streamed response, or AnswerTooLarge past ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(16384):
        size += len(chunk)
        if size > cap:
            raise AnswerTooLarge(f"answer larger than {cap // 1024} KiB")
        chunks.append(chunk)
    return b"".join(chunks)
