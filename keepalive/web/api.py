"""Writes to the running monitor, behind the API token (SPEC 12), and the silence endpoints (SPEC 13).

Token rules, in one place (``auth_middleware``):
- every write (any method but GET, HEAD and OPTIONS) needs ``Authorization: Bearer <token>``;
  writes never accept HTTP Basic: a browser replays cached Basic credentials on a request a
  foreign page makes, a Bearer header it never adds by itself (no CSRF);
- with ``MONITOR_HTTP_AUTH=all`` every read needs the token too, as Bearer or as the password
  of HTTP Basic (any user name; the browser asks for it), except ``/health`` and ``/ping/...``,
  which a second monitor and pushing jobs reach without secrets;
- a missing or wrong token is ``401 {"error": ...}``; the comparison takes constant time
  (hmac.compare_digest) and neither the offered nor the right token is ever logged.

A route added by anyone to the application ``create_app`` builds is covered by these rules
without doing anything: a POST handler is only ever reached with the right token.

Silences:
    POST   /api/silences        {"targets": "db-*", "duration": "2h", "comment": "..."} -> 201
    GET    /api/silences        {"silences": [...]} (soonest end first)
    DELETE /api/silences/<id>   204; 404 when no silence has that id (or 8-character prefix)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from keepalive.apitoken import token_matches
from keepalive.policy.silences import SilenceBook, SilenceError, read_request

AUTH_WRITES = "writes"
AUTH_ALL = "all"
AUTH_MODES = (AUTH_WRITES, AUTH_ALL)
OPEN_PATHS = frozenset({"/health"})
OPEN_PREFIXES = ("/ping/",)
READ_METHODS = frozenset({hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_OPTIONS})
# A silence request is a few hundred bytes; anything near this is not one.
MAX_BODY = 64 * 1024
# Names of matched targets listed in a new silence's answer (the total is always given).
MAX_LISTED = 50
REALM = 'Basic realm="keepalive monitor", charset="UTF-8"'

log = logging.getLogger("keepalive.web")


@dataclass(frozen=True, slots=True)
class ApiAuth:
    token: str = ""
    mode: str = AUTH_WRITES  # AUTH_WRITES or AUTH_ALL

    def __repr__(self) -> str:  # never print the token, not even in a debugger's repr
        return f"ApiAuth(mode={self.mode!r})"


def offered_token(request: web.BaseRequest, allow_basic: bool) -> str | None:
    """The token a request carries: Bearer, or (reads only) the password of HTTP Basic."""
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic" and allow_basic:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def _unauthorized(message: str, basic: bool) -> web.Response:
    # WWW-Authenticate Basic makes a browser ask for a user and password; the API client
    # (curl, the command line) is told Bearer.
    challenge = REALM if basic else 'Bearer realm="keepalive monitor"'
    return web.json_response(
        {"error": message},
        status=401,
        headers={hdrs.WWW_AUTHENTICATE: challenge, hdrs.CACHE_CONTROL: "no-store"},
    )


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def auth_middleware(auth: ApiAuth) -> Middleware:
    """Refuses, with 401, what SPEC 12 puts behind the token and the request does not carry."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.match_info.http_exception is not None:
            # No such route, or not for this method: 404/405 as before, whatever the token.
            return await handler(request)
        if request.path.startswith(OPEN_PREFIXES):
            # /ping/<token>: the push token is the credential, for POST as for GET (SPEC 14).
            return await handler(request)
        write = request.method not in READ_METHODS
        if write or (auth.mode == AUTH_ALL and not is_open_path(request.path)):
            offered = offered_token(request, allow_basic=not write)
            if offered is None:
                what = "this write" if write else "this monitor (MONITOR_HTTP_AUTH=all)"
                how = (
                    "Authorization: Bearer <token>"
                    if write
                    else "the token (Bearer, or as the Basic password)"
                )
                return _unauthorized(
                    f"{what} needs {how}; the token is in MONITOR_STATE_DIR/api_token", basic=not write
                )
            if not auth.token or not token_matches(auth.token, offered):
                return _unauthorized("wrong token", basic=not write)
        return await handler(request)

    return check


class BadBody(Exception):
    """A request body that is too large or not JSON: ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_json(request: web.Request) -> Any:
    """The request's JSON body, at most MAX_BODY bytes; raises BadBody (413, 400)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise BadBody(413, f"the body is larger than {MAX_BODY} bytes")
    data = await request.content.read(MAX_BODY + 1)
    if len(data) > MAX_BODY:
        raise BadBody(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(data) if data.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise BadBody(400, "the body is not JSON") from None


Report = Callable[..., None]


class SilenceRoutes:
    """POST/GET/DELETE /api/silences over one SilenceBook; each change is reported once
    (``silence_created`` / ``silence_removed`` events, with who and why)."""

    def __init__(
        self,
        book: SilenceBook,
        report: Report | None = None,
        names: Callable[[], Iterable[str]] | None = None,
    ) -> None:
        self.book = book
        self._report = report
        # The targets' names, so an answer says what a silence holds: "db-*" matching nothing
        # is a typo the operator should see at once, not when the pager rings.
        self._names = names

    def add_to(self, app: web.Application) -> None:
        app.router.add_post("/api/silences", self.create)
        app.router.add_get("/api/silences", self.list)
        app.router.add_delete("/api/silences/{id}", self.delete)

    async def create(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except BadBody as exc:
            return web.json_response({"error": exc.message}, status=exc.status)
        who = request.headers.get("X-Keepalive-User", "")[:100] or "api"
        try:
            parsed = read_request(body, self.book.clock(), self.book.max_silence, who=who)
            # The file is fsynced before the answer: off the loop.
            silence = await asyncio.to_thread(self.book.add, parsed)
        except SilenceError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except OSError as exc:
            return web.json_response(
                {"error": f"the silence could not be stored: {exc.strerror}"}, status=503
            )
        if self._report is not None:
            self._report("silence_created", "silence created", **silence.event_fields())
        answer = silence.to_json(self.book.clock())
        if self._names is not None:
            answer["matches"] = sorted(n for n in self._names() if silence.covers(n))[:MAX_LISTED]
            answer["matches_total"] = sum(1 for n in self._names() if silence.covers(n))
        return web.json_response(answer, status=201)

    async def list(self, request: web.Request) -> web.Response:
        now = self.book.clock()
        return web.json_response({"silences": [s.to_json(now) for s in self.book.all()]})

    async def delete(self, request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        try:
            removed = await asyncio.to_thread(self.book.remove, wanted)
        except OSError as exc:
            return web.json_response(
                {"error": f"the silence could not be removed: {exc.strerror}"}, status=503
            )
        if removed is None:
            shown = wanted if len(wanted) <= 40 else wanted[:40] + "..."
            return web.json_response({"error": f"no silence {shown!r} (see GET /api/silences)"}, status=404)
        if self._report is not None:
            self._report("silence_removed", "silence removed", id=removed.id, targets=list(removed.targets))
        return web.Response(status=204)


@dataclass
class WriteApi:
    """What the endpoint needs for writes: the token rules and the routes behind them.

    ``routes``: callables that add routes to the application (``SilenceRoutes.add_to``, the
    remediation endpoint, ...); whatever they add that is not a read needs the token."""

    auth: ApiAuth = field(default_factory=ApiAuth)
    routes: list[Callable[[web.Application], None]] = field(default_factory=list)

    def middleware(self) -> Middleware:
        return auth_middleware(self.auth)

    def add_to(self, app: web.Application) -> None:
        for add in self.routes:
            add(app)
