"""The push targets' endpoint (SPEC section 14): ``/ping/<token>`` and ``/ping/<token>/fail``.

GET or POST ``/ping/<token>``: ``200 ok``. ``/ping/<token>/fail``: the job failed; the first
line of the body (at most 200 characters) is the reason. An unknown token answers 404 and is
only counted, never logged (no access log is kept, and nothing here writes one): it may be a
typo of someone's secret. These paths need no API token even with ``MONITOR_HTTP_AUTH=all``:
the push token is the credential.

A ping costs the loop a dict lookup and the read of at most MAX_PING_BODY bytes.
"""

from __future__ import annotations

from aiohttp import web

from keepalive.probe.push import MAX_FAIL_REASON, PushBoard, fail_reason

# Room for a 200-character reason in 4-byte UTF-8; anything past it is not read.
MAX_PING_BODY = MAX_FAIL_REASON * 4 + 2
PING_PREFIX = "/ping/"
_HEADERS = {"Cache-Control": "no-store"}


def _answer(known: bool) -> web.Response:
    if known:
        return web.Response(text="ok\n", headers=_HEADERS)
    return web.Response(status=404, text="unknown ping token\n", headers=_HEADERS)


class PingRoutes:
    def __init__(self, board: PushBoard) -> None:
        self._board = board

    async def ping(self, request: web.Request) -> web.Response:
        return _answer(self._board.ping(request.match_info["token"]))

    async def fail(self, request: web.Request) -> web.Response:
        body = await request.content.read(MAX_PING_BODY) if request.can_read_body else b""
        return _answer(self._board.ping(request.match_info["token"], fail_reason(body)))


def add_ping_routes(app: web.Application, board: PushBoard) -> None:
    """GET and POST /ping/{token} and /ping/{token}/fail (HEAD is not a ping: link checkers
    and previews send it)."""
    routes = PingRoutes(board)
    for method in ("GET", "POST"):
        app.router.add_route(method, "/ping/{token}", routes.ping, name=None)
        app.router.add_route(method, "/ping/{token}/fail", routes.fail, name=None)
