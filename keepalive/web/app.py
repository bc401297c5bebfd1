"""The monitor's own HTTP endpoint: /health, /metrics, /api/status and the status page.

Every answer is rendered from the engine's immutable ``MonitorSnapshot`` (keepalive.engine.
snapshot). This module keeps no monitor state and is given no settings, so nothing secret can
reach a page: what the snapshot holds is all there is (its URLs are already masked).

Routes (GET only; aiohttp answers HEAD for each, anything else is 405, unknown paths 404):
    /health             200 {"status": "ok", ...} or 503 {"status": "stalled" or
                        "alert_path_failing", "problems": [...], ...}; built on the loop (a few
                        numbers), exempt from the Host check (keepalive.web.guard)
    /metrics            Prometheus text, or OpenMetrics when the scraper asks for it (Accept);
                        gzip when asked (Accept-Encoding); built off the loop (keepalive.web.render)
    /api/status         the status document, gzip when asked, built off the loop; without
                        the per-target history unless ``?history=1`` (the page's list needs
                        none, and history is most of the weight: 28 MB at 10,000 targets)
    /api/targets/<name> one target with its history, recent state changes and its recent
                        alerts with their delivery per channel (the page's detail view; the
                        outbox is read in a thread), 404 for a name the monitor does not check
    /api/events         Server-Sent Events: rows as they are checked, state changes
                        (keepalive.web.stream); its own cap of 100 streams
    /                   the status page, fed by /api/events (polling /api/status as fallback)
    /static/status.js   its script, served separately so the page's CSP needs no inline code
    /static/status.css  its style sheet

Writes (keepalive.web.api, SPEC 12-13), behind ``Authorization: Bearer <token>``; with
MONITOR_HTTP_AUTH=all every path but /health and /ping/... needs the token too:
    POST /api/silences, GET /api/silences, DELETE /api/silences/<id>
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import gzip
import json
import math
import socket
import struct
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from aiohttp import hdrs, web
from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.openmetrics.exposition import ALLOWUTF8, UNDERSCORES
from prometheus_client.registry import Collector

from keepalive.delivery.store import AlertRecord
from keepalive.engine.snapshot import (
    HistoryPoint,
    MonitorSnapshot,
    TargetSnapshot,
    monitor_json,
    target_json,
    to_health,
    to_status_json,
)
from keepalive.errors import ConfigError
from keepalive.events import iso
from keepalive.probe.push import PushBoard
from keepalive.web.api import WriteApi
from keepalive.web.guard import ConnectionLimit, LimitedSite, allowed_names, host_check, machine_names
from keepalive.web.metrics import build_registry
from keepalive.web.ping import add_ping_routes
from keepalive.web.render import RenderCache, Rendered
from keepalive.web.stream import RETRY_MS, EventHub, Stream

STATIC_DIR = Path(__file__).parent / "static"

# Descriptors for our own endpoint stay a small share of the default limit of 1,024, so checks
# never starve: ~1,100 idle connections once failed every check with "Too many open files".
MAX_CONNECTIONS = 256
# Closes connections idle this long, and request heads still incomplete after it (slowloris).
# Longer than Prometheus's default 15 s scrape interval would keep one connection per scraper
# open for nothing; shorter than it means one reconnect per scrape, which costs nothing here.
IDLE_TIMEOUT = 10.0
# A client must take a whole answer within this; a 7 MB exposition needs well under a second
# on any network a scraper should use.
SEND_TIMEOUT = 30.0
# Bytes handed to the connection at a time; the next waits until the client has taken them.
SEND_CHUNK = 64 * 1024
# Middle of zlib's range: level 9 costs about twice the CPU for a few per cent fewer bytes.
GZIP_LEVEL = 6
_COMPACT = (",", ":")
OPENMETRICS_PREFIX = "application/openmetrics-text; version=1.0.0;"

NO_STORE = "no-store"
# The page loads nothing but its own script and style sheet and talks only to this server.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate rather than cache forever: the files change when the monitor is upgraded.
    "Cache-Control": "no-cache",
}
# How often an open stream looks whether its client has gone (it learns it from no write).
STREAM_CHECK_INTERVAL = 1.0
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_TRUE_WORDS = frozenset({"", "1", "true", "yes", "on"})


class MonitorView(Protocol):
    """What the web endpoint needs from the running monitor."""

    def snapshot(self, include_history: bool = False) -> MonitorSnapshot:
        """The monitor as it is now; the same object while nothing changed (it is cached)."""
        ...


# One target with its history, or None when the monitor does not check that name.
TargetLookup = Callable[[str], TargetSnapshot | None]
# A target's recent alerts in the outbox, newest first (blocking: called in a thread).
AlertLookup = Callable[[str], list[AlertRecord]]


def alert_record_json(record: AlertRecord) -> dict[str, Any]:
    """One alert of the detail view and how each channel fared (never who the recipients are:
    a chat id or an address is nobody's business on an open page)."""
    alert = record.alert
    return {
        "id": alert.id,
        "kind": alert.kind.value,
        "at": iso(alert.at),
        "stored_at": iso(record.stored_at),
        "reason": alert.reason,
        "channels": [
            {
                "channel": c.channel,
                "sent": c.sent,
                "pending": c.pending,
                "failed": c.failed,
                "attempts": c.attempts,
                "next_try": iso(c.next_try) if c.next_try is not None else None,
                "last_error": c.last_error,
                "sent_at": iso(c.sent_at) if c.sent_at is not None else None,
            }
            for c in record.channels
        ],
    }


def negotiate(accept: str) -> tuple[Callable[[Collector], bytes], str]:
    """The encoder and Content-Type for an Accept header: prometheus_client's own choice
    (its aiohttp handler would build on the loop), with the OpenMetrics version pinned.

    choose_encoder echoes whatever version >= 1.0.0 the client names (``version=1.0.01``,
    ``7.0.0``), and answers are cached per Content-Type: unpinned, every new spelling would
    cost a build and a cached copy. The escaping it keeps is one of four known words.
    """
    encoder, content_type = choose_encoder(accept)
    if content_type.startswith("application/openmetrics-text") and not content_type.startswith(
        OPENMETRICS_PREFIX
    ):
        escaping = content_type.partition("escaping=")[2] or "underscores"
        encoder, content_type = choose_encoder(
            f"application/openmetrics-text; version=1.0.0; escaping={escaping}"
        )
    if isinstance(encoder, partial) and encoder.keywords.get("escaping") == UNDERSCORES:
        # Every metric and label name here is already a legacy one, which "underscores" leaves
        # as it is, but prometheus_client 0.26 still rewrites each sample's name character by
        # character: at 10,000 targets 0.98 s of the render thread's GIL per build, 0.59 s with
        # allow-utf-8, whose answer is the same bytes for such names (test_web_metrics checks).
        encoder = partial(encoder, escaping=ALLOWUTF8)
    return encoder, content_type


def _finish(body: bytes, content_type: str, compress: bool) -> Rendered:
    headers = [(hdrs.CONTENT_TYPE, content_type)]
    if compress:
        body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers.append((hdrs.CONTENT_ENCODING, "gzip"))
    return Rendered(body, tuple(headers))


class RowTexts:
    """Each target's /api/status JSON text, kept while its snapshot part is current.

    A target's part of the snapshot is rebuilt only when it is checked, so at 10,000 targets
    checked every 10 s a build a second re-encodes a tenth of the rows, not all of them
    (10,002 rows, 4.9 MB, a tenth changed: the body in 22 ms instead of 136 ms, gzip 16 ms
    more). Used only from the render worker thread (one build at a time): no lock needed.

    The text with history is kept too: writing every target's 100 points again on each build
    was 2.4 s of the render thread (and of the GIL the loop waits for) per /api/status?history=1
    at 10,000 targets, 0.3 s with a tenth of the rows changed (about 35 MB more memory).
    """

    def __init__(self) -> None:
        self._texts: dict[int, tuple[TargetSnapshot, str]] = {}
        self._with_history: dict[int, tuple[TargetSnapshot, str]] = {}

    def text(self, target: TargetSnapshot) -> str:
        hit = self._texts.get(id(target))
        if hit is not None and hit[0] is target:
            return hit[1]
        text = json.dumps(target_json(target, include_history=False), separators=_COMPACT)
        self._texts[id(target)] = (target, text)
        return text

    def text_with_history(self, target: TargetSnapshot) -> str:
        hit = self._with_history.get(id(target))
        if hit is not None and hit[0] is target:
            return hit[1]
        if target.history is None:
            raise ValueError("this snapshot was taken without history")
        text = self.text(target)
        text = f'{text[:-1]},"history":[{",".join([_point(p) for p in target.history])}]}}'
        self._with_history[id(target)] = (target, text)
        return text

    def keep_only(self, targets: Iterable[TargetSnapshot], include_history: bool = False) -> None:
        """Forget the texts of parts no longer in the snapshot (and the parts themselves); the
        texts with history only after a build with history (one without must not drop them)."""
        live = {id(target) for target in targets}
        self._texts = {key: value for key, value in self._texts.items() if key in live}
        if include_history:
            self._with_history = {key: value for key, value in self._with_history.items() if key in live}


def _status_body(snapshot: MonitorSnapshot, include_history: bool, rows: RowTexts | None = None) -> bytes:
    """The /api/status document as JSON, encoded one target at a time.

    Two things froze the checking loop although this runs in another thread, both measured at
    10,000 targets with history (28 MB): one json.dumps of the whole document is a single C
    call holding the GIL (0.6 s), and a million [at, latency, ok] lists set off full garbage
    collections, which stop every thread (0.15 s). So each target is its own json.dumps, and
    its history is written straight from the snapshot as text (strings are not tracked by the
    collector), both kept in ``rows`` while that target is unchanged, in the shape
    keepalive.engine.snapshot.to_status_json gives it.
    """
    rows = rows if rows is not None else RowTexts()
    # Everything but the targets, as to_status_json gives it (whatever keys it grows).
    skeleton = to_status_json(dataclasses.replace(snapshot, targets=()), include_history=False)
    skeleton["monitor"] = monitor_json(snapshot)  # its counts are of every target
    parts = []
    for target in snapshot.targets:
        parts.append(rows.text_with_history(target) if include_history else rows.text(target))
    rows.keep_only(snapshot.targets, include_history)
    pieces = [
        f'"targets":[{",".join(parts)}]'
        if key == "targets"
        else f"{json.dumps(key)}:{json.dumps(value, separators=_COMPACT)}"
        for key, value in skeleton.items()
    ]
    return ("{" + ",".join(pieces) + "}").encode()


def _number(value: float | None) -> str:
    # float.__repr__ is what json.dumps writes; a non-finite value would not be JSON at all.
    return float.__repr__(float(value)) if value is not None and math.isfinite(value) else "null"


def _point(point: HistoryPoint) -> str:
    return f"[{_number(point.at)},{_number(point.latency_ms)},{'true' if point.ok else 'false'}]"


async def _send(request: web.Request, rendered: Rendered, vary: str, timeout: float) -> web.StreamResponse:
    """Write a built answer in SEND_CHUNK pieces, each waiting for the client, within ``timeout``.

    A whole body handed to aiohttp at once is copied into the connection's buffer: 256
    scrapers that never read would have held 256 copies of a 7 MB exposition, and each
    connection forever. Here a client holds at most a chunk or two of memory, and one that
    has not taken the answer within ``timeout`` is disconnected.
    """
    response = web.StreamResponse(headers={hdrs.CACHE_CONTROL: NO_STORE, hdrs.VARY: vary})
    for name, value in rendered.headers:
        response.headers[name] = value
    response.content_length = len(rendered.body)
    try:
        async with asyncio.timeout(timeout):
            await response.prepare(request)
            if request.method != hdrs.METH_HEAD:
                body = memoryview(rendered.body)
                for start in range(0, len(body), SEND_CHUNK):
                    await response.write(body[start : start + SEND_CHUNK])
            await response.write_eof()
    except TimeoutError:
        _reset(request)
    return response


def _reset(request: web.Request) -> None:
    """Drop the connection with a reset, discarding what the client has not taken.

    A plain close queues the FIN behind the unsent bytes, which a client that stopped
    reading never acknowledges: the kernel would keep them for minutes. SO_LINGER 0 sends RST.
    """
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class _Handlers:
    def __init__(
        self,
        view: MonitorView,
        cache: RenderCache,
        send_timeout: float,
        hub: EventHub,
        lookup: TargetLookup | None,
        alerts: AlertLookup | None = None,
    ) -> None:
        self._view = view
        self._alerts = alerts
        self._alert_reads = asyncio.Semaphore(2)
        self._cache = cache
        self._send_timeout = send_timeout
        self._hub = hub
        self._lookup = lookup
        self._rows = RowTexts()
        # Read once: a missing file should fail at start-up, not on the first visitor.
        self._page = (STATIC_DIR / "status.html").read_bytes()
        self._script = (STATIC_DIR / "status.js").read_bytes()
        self._style = (STATIC_DIR / "status.css").read_bytes()

    async def health(self, request: web.Request) -> web.Response:
        healthy, body = to_health(self._view.snapshot())
        return web.json_response(body, status=200 if healthy else 503, headers={"Cache-Control": NO_STORE})

    async def metrics(self, request: web.Request) -> web.StreamResponse:
        encoder, content_type = negotiate(",".join(request.headers.getall(hdrs.ACCEPT, [])))
        compress = gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        snapshot = self._view.snapshot()

        def build() -> Rendered:
            return _finish(encoder(build_registry(snapshot)), content_type, compress)

        rendered = await self._cache.get(("metrics", content_type, compress), snapshot, build)
        return await _send(request, rendered, "Accept, Accept-Encoding", self._send_timeout)

    async def api_status(self, request: web.Request) -> web.StreamResponse:
        word = request.query.get("history", "0").strip().lower()
        if word not in _FALSE_WORDS and word not in _TRUE_WORDS:
            return web.json_response(
                {"error": f"history={word!r} is invalid: expected 0 or 1"},
                status=400,
                headers={"Cache-Control": NO_STORE},
            )
        include_history = word not in _FALSE_WORDS
        compress = gzip_accepted(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        snapshot = self._view.snapshot(include_history)

        def build() -> Rendered:
            return _finish(
                _status_body(snapshot, include_history, self._rows),
                "application/json; charset=utf-8",
                compress,
            )

        rendered = await self._cache.get(("status", include_history, compress), snapshot, build)
        return await _send(request, rendered, "Accept-Encoding", self._send_timeout)

    async def target(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if self._lookup is not None:
            row = self._lookup(name)
        else:  # a view without runtimes (tests): its whole snapshot, fine for a handful
            row = next((t for t in self._view.snapshot(True).targets if t.name == name), None)
        if row is None:
            shown = name if len(name) <= 100 else name[:100] + "..."
            return web.json_response(
                {"error": f"no target named {shown!r}"}, status=404, headers={"Cache-Control": NO_STORE}
            )
        body: dict[str, Any] = {
            "target": target_json(row, include_history=row.history is not None),
            "changes": [change.as_json() for change in self._hub.recent_changes(name)],
        }
        if self._alerts is not None:
            try:
                # Two reads at a time at most: the delivery threads share the outbox's lock, and
                # anyone who can open the page can ask for details as fast as they like.
                async with self._alert_reads:
                    records = await asyncio.to_thread(self._alerts, row.name)
            except Exception as exc:  # the outbox's trouble shows on /health; the rest still answers
                body["alerts"] = None
                body["alerts_error"] = f"the outbox cannot be read now ({type(exc).__name__})"
            else:
                body["alerts"] = [alert_record_json(record) for record in records]
        return web.json_response(body, headers={"Cache-Control": NO_STORE})

    async def events(self, request: web.Request) -> web.StreamResponse:
        hub = self._hub
        if len(hub.streams) >= hub.max_streams:
            return web.json_response(
                {"error": f"too many open event streams (at most {hub.max_streams}); poll /api/status"},
                status=503,
                headers={"Cache-Control": NO_STORE, "Retry-After": "10"},
            )
        response = web.StreamResponse(
            headers={
                hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
                hdrs.CACHE_CONTROL: NO_STORE,
                "X-Accel-Buffering": "no",  # nginx would otherwise hold events back
            }
        )
        await response.prepare(request)
        if request.method == hdrs.METH_HEAD:
            return response
        stream, first = hub.open(request.headers.get("Last-Event-ID"), lambda: _reset(request))
        try:
            await self._stream(request, response, stream, [f"retry: {RETRY_MS}\n\n".encode(), *first])
        except (ConnectionError, TimeoutError):
            _reset(request)
        finally:
            hub.close(stream)
        return response

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, stream: Stream, first: list[bytes]
    ) -> None:
        """Write events until the client goes, falls too far behind (reset) or the server stops."""
        await self._write(response, first)
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        check_every = min(STREAM_CHECK_INTERVAL, self._hub.ping_interval)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(check_every):
                    await stream.wake.wait()
            if stream.ended:
                await response.write_eof()
                return
            if stream.dropped:
                raise TimeoutError  # it did not take what it was sent: reset, it reconnects
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            events = stream.take()
            if not events and loop.time() - last_write >= self._hub.ping_interval:
                events = [b": ping\n\n"]
            if events:
                await self._write(response, events)
                last_write = loop.time()

    async def _write(self, response: web.StreamResponse, events: list[bytes]) -> None:
        async with asyncio.timeout(self._send_timeout):
            for event in events:
                await response.write(event)

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=self._page, content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)

    async def script(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self._script, content_type="text/javascript", charset="utf-8", headers=PAGE_HEADERS
        )

    async def style(self, request: web.Request) -> web.Response:
        return web.Response(body=self._style, content_type="text/css", charset="utf-8", headers=PAGE_HEADERS)


async def _common_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    # Also reaches aiohttp's own 404/405 answers, which no handler of ours builds.
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", NO_STORE)


def create_app(
    view: MonitorView,
    host_names: frozenset[str],
    limit: ConnectionLimit | None = None,
    cache: RenderCache | None = None,
    send_timeout: float = SEND_TIMEOUT,
    hub: EventHub | None = None,
    lookup: TargetLookup | None = None,
    writes: WriteApi | None = None,
    pushes: PushBoard | None = None,
    alerts: AlertLookup | None = None,
) -> web.Application:
    """The aiohttp application serving /health, /metrics, /api/status and the status page.

    ``host_names``: the names besides IP literals that requests may carry in Host (see
    keepalive.web.guard.allowed_names). ``limit``: the connection cap whose idle tracking
    needs a middleware. ``cache``: where answers are built (a fresh one by default).
    ``send_timeout``: how long a client may take to receive /metrics or /api/status.
    ``hub``: what /api/events streams (the engine publishes into it; a fresh one, fed
    nothing but the monitor summary, by default). ``lookup``: one target with its history
    for /api/targets/<name> (without it, the name is looked up in a full snapshot).
    ``pushes``: the push targets' board, which /ping/<token> writes (keepalive.web.ping).
    ``alerts``: a target's recent alerts and their delivery, for /api/targets/<name>.
    """
    cache = cache or RenderCache()
    hub = hub if hub is not None else EventHub(view)
    handlers = _Handlers(view, cache, send_timeout, hub, lookup, alerts)
    middlewares = [host_check(host_names)] if limit is None else [limit.middleware, host_check(host_names)]
    # Without a token every write is refused (401): no route can be reached unguarded (SPEC 12).
    writes = writes if writes is not None else WriteApi()
    middlewares.append(writes.middleware())
    app = web.Application(middlewares=middlewares)
    writes.add_to(app)
    if pushes is not None:
        add_ping_routes(app, pushes)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/metrics", handlers.metrics)
    app.router.add_get("/api/status", handlers.api_status)
    app.router.add_get("/api/targets/{name:.+}", handlers.target)
    app.router.add_get("/api/events", handlers.events)
    app.router.add_get("/", handlers.page)
    app.router.add_get("/static/status.js", handlers.script)
    app.router.add_get("/static/status.css", handlers.style)
    app.on_response_prepare.append(_common_headers)

    async def close_cache(app: web.Application) -> None:
        cache.close()

    async def start_hub(app: web.Application) -> None:
        hub.start()

    async def stop_hub(app: web.Application) -> None:
        await hub.stop()  # before connections are closed: every stream ends cleanly

    app.on_startup.append(start_hub)
    app.on_shutdown.append(stop_hub)
    app.on_cleanup.append(close_cache)
    return app


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bind_error(host: str, port: int, exc: OSError) -> ConfigError:
    where = _address(host, port)
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return ConfigError(
            f"MONITOR_HTTP_HOST={host!r} is invalid: cannot listen on {where} "
            f"(not an address of this machine: {exc.strerror or exc})"
        )
    if exc.errno == errno.EADDRINUSE:
        return ConfigError(f"MONITOR_HTTP_PORT={port} is invalid: address {where} already in use")
    if exc.errno == errno.EACCES:
        return ConfigError(
            f"MONITOR_HTTP_PORT={port} is invalid: permission denied to listen on {where} "
            "(ports below 1024 need root)"
        )
    return ConfigError(
        f"MONITOR_HTTP_PORT={port} is invalid: cannot listen on {where}: {exc.strerror or exc}"
    )


async def start_web(
    view: MonitorView,
    host: str,
    port: int,
    *,
    max_connections: int = MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    extra_host_names: Iterable[str] = (),
    cache: RenderCache | None = None,
    send_timeout: float = SEND_TIMEOUT,
    hub: EventHub | None = None,
    lookup: TargetLookup | None = None,
    writes: WriteApi | None = None,
    pushes: PushBoard | None = None,
    alerts: AlertLookup | None = None,
) -> web.AppRunner:
    """Serve the endpoint on host:port and return the runner; ``await runner.cleanup()`` stops it.

    Raises ConfigError, one line naming MONITOR_HTTP_PORT or MONITOR_HTTP_HOST, when the
    address cannot be bound. Port 0 picks a free port; read it from ``runner.addresses``.
    """
    limit = ConnectionLimit(max_connections)
    names = allowed_names(host, (*extra_host_names, *await machine_names()))
    app = create_app(view, names, limit, cache, send_timeout, hub, lookup, writes, pushes, alerts)
    # No access log: it would write a second, Apache-style line format into the monitor's log,
    # once per scrape. A short shutdown timeout keeps a stop prompt: every answer is quick.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0, keepalive_timeout=idle_timeout)
    await runner.setup()
    assert runner.server is not None
    limit.attach(runner.server)
    try:
        await LimitedSite(runner, host, port, limit).start()
    except OSError as exc:
        await runner.cleanup()
        raise _bind_error(host, port, exc) from None
    return runner
