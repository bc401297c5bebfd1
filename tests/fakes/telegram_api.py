"""A fake Telegram Bot API on a real loopback HTTP server, for end-to-end delivery tests.

``FakeTelegram`` answers ``POST /bot<token>/sendMessage`` like Telegram does: it checks the
token in the path (401 ``Unauthorized`` otherwise), parses the HTML text the way Telegram's
parse mode does (unsupported tags or entities give 400 ``Bad Request: can't parse
entities``), and records every accepted message: chat id, raw text, the text as a reader
would see it (``rendered``), arrival time and message id. Every request, accepted or not, is
also recorded as an ``Attempt``.

Behaviour is scriptable globally or per chat, for the next N requests or for good::

    fake.too_many_requests(times=2, retry_after=1)      # 429, parameters.retry_after = 1
    fake.server_error(times=3)                          # 500 (or status=502 ...)
    fake.hang(times=1, seconds=5)                       # answer nothing, then drop the socket
    fake.block("42")                                    # 403 Forbidden: bot was blocked by the user
    fake.chat_not_found("43")                           # 400 Bad Request: chat not found
    fake.unauthorized()                                 # 401 Unauthorized for everyone
    fake.trickle(seconds=0.1)                           # a status line, then one byte every 0.1 s
    fake.flood()                                        # 200 and a body that never ends
    fake.migrate("-100", to="-1001234567890")           # 400 with parameters.migrate_to_chat_id

The bot's side of chats (SPEC 16): ``fake.push_update("42", "/status")`` queues a message
update; ``getUpdates`` long-polls (``timeout``) and treats ``offset`` as Telegram does (every
update before it is confirmed and gone); ``fake.conflict(times=2)`` answers the next getUpdates
with 409 Conflict; ``setMyCommands`` is recorded in ``commands_set`` and every getUpdates
payload in ``update_requests``. Messages keep their payload (``message_thread_id``,
``disable_notification``). Over HTTP: ``POST /__fake__/update`` with
``{"chat": 42, "text": "/status", "user": "ops", "topic": 7}``.

Rules for one chat win over global ones; a lasting rule wins over a counted one. The same
rules can be set over HTTP (``POST /__fake__/rule`` with a JSON object such as
``{"rule": "429", "times": 2, "retry_after": 1, "chat": "42"}``); ``GET /__fake__/messages``
returns what was accepted and ``POST /__fake__/reset`` forgets rules and records.

Standalone (for subprocess end-to-end tests and the benchmarks)::

    python -m tests.fakes.telegram_api --port 8081 --record /tmp/messages.jsonl \
        [--token 123:ABC...] [--rule 500,times=3] [--rule 403,chat=42]

prints ``telegram_api: listening on http://127.0.0.1:8081 token=<token>`` and appends each
accepted message to the ``--record`` file as one JSON object a line, until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from tests.fakes.standalone import serve_until_signalled

# Shaped like a real token (so scrub()'s token pattern would catch it too), obviously fake.
DEFAULT_TOKEN = "123456789:AAFakeTokenForKeepAliveTests_0123456789"
RULES = ("ok", "429", "500", "hang", "400", "401", "403", "trickle", "flood", "migrate")
ALLOWED_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "tg-spoiler",
        "span",
        "blockquote",
        "tg-emoji",
    }
)
NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
MAX_TEXT = 4096
# An "&" that does not start a complete entity, e.g. "&amp" cut off before its ";".
_BROKEN_ENTITY = re.compile(r"&(?!(?:[a-zA-Z]+|#[0-9]+|#[xX][0-9a-fA-F]+);)")


@dataclass(frozen=True)
class Message:
    """A message the fake accepted."""

    chat_id: str
    text: str  # as sent, HTML
    rendered: str  # what the reader sees: tags gone, entities decoded
    time: float  # epoch seconds at arrival
    message_id: int
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Attempt:
    """Any sendMessage request, and how it was answered (``status`` 0: never answered)."""

    chat_id: str
    status: int
    time: float


@dataclass
class Rule:
    rule: str
    times: int | None = None  # None: for good
    retry_after: float = 1.0
    seconds: float | None = None  # hang: how long (None: until the server stops)
    status: int = 500  # "500": which 5xx
    description: str | None = None  # overrides the rule's default description
    migrate_to: str | None = None  # "migrate": the supergroup's new chat id


class ParseError(Exception):
    pass


class _Renderer(HTMLParser):
    """Telegram's HTML parse mode, strictly enough to catch unescaped or split markup."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.parts: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise ParseError(f'Unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            raise ParseError(f'Unexpected end tag "{tag}"')
        self.open.pop()

    def handle_data(self, data: str) -> None:
        # Stricter than Telegram, on purpose: any bare <, > or & means our escaping slipped.
        for ch in "<>&":
            if ch in data:
                raise ParseError(f"Unescaped {ch!r} in text")
        self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        if name not in NAMED_ENTITIES:
            raise ParseError(f'Unsupported HTML entity "&{name};"')
        self.parts.append(NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        try:
            code = int(name[1:], 16) if name[:1] in "xX" else int(name)
            self.parts.append(chr(code))
        except (ValueError, OverflowError):
            raise ParseError(f'Bad numeric entity "&#{name};"') from None


def render(text: str) -> str:
    """The text a reader sees for ``text`` in HTML parse mode; raises ParseError like Telegram."""
    broken = _BROKEN_ENTITY.search(text)
    if broken:
        raise ParseError(f"Unclosed HTML entity at byte offset {broken.start()}")
    parser = _Renderer()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ParseError(f'Can\'t find end tag corresponding to start tag "{parser.open[-1]}"')
    return "".join(parser.parts)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: FakeTelegram) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and go away are part of the game here


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # One request a connection: a stopped fake must look down at once, with no pooled
    # keep-alive connection still being served by a handler thread.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        owner = self.server.owner
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path.startswith("/__fake__/"):
            self._reply(*owner._admin(self.command, path, body))
            return
        prefix = f"/bot{owner.token}/"
        if not path.startswith("/bot"):
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        if not path.startswith(prefix):
            self._reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            return
        method = path[len(prefix) :]
        if method == "getMe":
            self._reply(
                200, {"ok": True, "result": {"id": 123456789, "is_bot": True, "username": "fake_bot"}}
            )
            return
        if method in ("getUpdates", "setMyCommands"):
            try:
                payload = json.loads(body or b"{}")
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                self._reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid JSON"})
                return
            if method == "getUpdates":
                self._reply(*owner._get_updates(payload))
            else:
                self._reply(*owner._set_my_commands(payload))
            return
        if method != "sendMessage" or self.command != "POST":
            self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found: method not found"})
            return
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            self._reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid JSON"})
            return
        answer = owner._send_message(payload if isinstance(payload, dict) else {})
        if answer is None:  # hang: never answer, just drop the connection when told to stop
            self.close_connection = True
            return
        if isinstance(answer, Rule):
            self.close_connection = True
            # The client giving up and closing is what these rules are for.
            with suppress(OSError):
                if answer.rule == "trickle":
                    self._trickle(answer)
                else:
                    self._flood()
            return
        self._reply(*answer)

    def _trickle(self, rule: Rule) -> None:
        """A status line, then a header one byte at a time: every read gets something, so a
        per-read timeout never trips; only a total deadline ends it."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.server.owner._stopping.wait(rule.seconds or 0.1):
            self.wfile.write(b"x")

    def _flood(self) -> None:
        """200 with no length and a body that never ends (until the client closes)."""
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
        self.wfile.write(b'{"ok": true, "padding": "')
        block = b"x" * 65536
        while not self.server.owner._stopping.is_set():
            self.wfile.write(block)

    def _reply(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _error(status: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


class FakeTelegram:
    """A threaded loopback Bot API. See the module doc."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        record: Path | None = None,
    ) -> None:
        self.token = token
        self.host = host
        self._requested_port = port
        self._record = record
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._messages: list[Message] = []
        self._attempts: list[Attempt] = []
        self._lasting: dict[str | None, Rule] = {}
        self._counted: dict[str | None, list[Rule]] = {}
        self._next_id = 1
        # getUpdates (the bot's commands, SPEC 16): scripted updates, 409s, what was asked.
        self._updates: list[dict[str, Any]] = []
        self._next_update_id = 1
        self._conflicts = 0
        self.update_requests: list[dict[str, Any]] = []
        self.commands_set: list[list[dict[str, Any]]] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        if self._server is not None:
            raise RuntimeError("FakeTelegram is already started")
        self._stopping.clear()
        self._server = _Server((self.host, self._requested_port), self)
        # Keep the port: a restarted fake comes back where the monitor expects it.
        self._requested_port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-telegram",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and release hung requests; records and rules are kept."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()  # long-polling getUpdates return now
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)
        self._server = self._thread = None

    def __enter__(self) -> FakeTelegram:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._requested_port

    @property
    def url(self) -> str:
        """The base URL to use as ``TELEGRAM_API_URL``."""
        return f"http://{self.host}:{self.port}"

    # -- scripting ---------------------------------------------------------------------------

    def add_rule(self, rule: Rule, chat: str | None = None) -> None:
        """Apply ``rule`` to ``chat`` (None: every chat), for ``rule.times`` requests or for good."""
        if rule.rule not in RULES:
            raise ValueError(f"unknown rule {rule.rule!r}: expected one of {RULES}")
        with self._lock:
            if rule.times is None:
                self._lasting[chat] = rule
            else:
                self._counted.setdefault(chat, []).append(rule)

    def too_many_requests(self, times: int = 1, retry_after: float = 1, chat: str | None = None) -> None:
        self.add_rule(Rule("429", times, retry_after=retry_after), chat)

    def server_error(self, times: int | None = 1, status: int = 500, chat: str | None = None) -> None:
        self.add_rule(Rule("500", times, status=status), chat)

    def hang(self, times: int | None = 1, seconds: float | None = None, chat: str | None = None) -> None:
        self.add_rule(Rule("hang", times, seconds=seconds), chat)

    def block(self, chat: str) -> None:
        self.add_rule(Rule("403"), chat)

    def chat_not_found(self, chat: str) -> None:
        self.add_rule(Rule("400"), chat)

    def unauthorized(self, chat: str | None = None) -> None:
        self.add_rule(Rule("401"), chat)

    def trickle(self, times: int | None = 1, seconds: float = 0.1, chat: str | None = None) -> None:
        self.add_rule(Rule("trickle", times, seconds=seconds), chat)

    def flood(self, times: int | None = 1, chat: str | None = None) -> None:
        self.add_rule(Rule("flood", times), chat)

    def migrate(self, chat: str, to: str) -> None:
        """``chat`` became a supergroup with id ``to``: every send to ``chat`` gets the 400."""
        self.add_rule(Rule("migrate", migrate_to=to), chat)

    def push_update(
        self,
        chat: int | str,
        text: str,
        *,
        user: str | None = "ops",
        user_id: int = 1001,
        chat_username: str | None = None,
        topic: int | None = None,
        date: float | None = None,
    ) -> int:
        """A message ``text`` in ``chat`` for the bot to read with getUpdates; its update_id."""
        with self._changed:
            update_id = self._next_update_id
            self._next_update_id += 1
            sender: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": "Op"}
            if user is not None:
                sender["username"] = user
            chat_obj: dict[str, Any] = {"id": int(chat), "type": "private" if int(chat) > 0 else "supergroup"}
            if chat_username is not None:
                chat_obj["username"] = chat_username
            message: dict[str, Any] = {
                "message_id": 10_000 + update_id,
                "date": int(time.time() if date is None else date),
                "chat": chat_obj,
                "from": sender,
                "text": text,
            }
            if topic is not None:
                message["message_thread_id"] = topic
                message["is_topic_message"] = True
            self._updates.append({"update_id": update_id, "message": message})
            self._changed.notify_all()
            return update_id

    def conflict(self, times: int = 1) -> None:
        """The next ``times`` getUpdates answer 409 Conflict (another consumer of the bot)."""
        with self._lock:
            self._conflicts += times

    def pending_updates(self) -> int:
        """Updates not yet confirmed by a later offset."""
        with self._lock:
            return len(self._updates)

    def wait_for_update_requests(self, count: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: len(self.update_requests) >= count, timeout)

    def _get_updates(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        timeout = payload.get("timeout", 0)
        offset = payload.get("offset")
        with self._changed:
            self.update_requests.append(dict(payload))
            self._changed.notify_all()
            if self._conflicts:
                self._conflicts -= 1
                return _error(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot "
                    "instance is running",
                )
            if isinstance(offset, int):
                # As Telegram does: an offset confirms every update before it, for good.
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            wait = float(timeout) if isinstance(timeout, int | float) else 0.0
            self._changed.wait_for(lambda: bool(self._updates) or self._stopping.is_set(), min(wait, 30.0))
            return 200, {"ok": True, "result": list(self._updates[:100])}

    def _set_my_commands(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        commands = payload.get("commands")
        if not isinstance(commands, list) or not commands:
            return _error(400, "Bad Request: commands must be a non-empty array")
        with self._changed:
            self.commands_set.append(commands)
            self._changed.notify_all()
        return 200, {"ok": True, "result": True}

    def reset(self) -> None:
        """Forget every rule and every record."""
        with self._lock:
            self._lasting.clear()
            self._counted.clear()
            self._messages.clear()
            self._attempts.clear()

    # -- what happened -----------------------------------------------------------------------

    @property
    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def messages_to(self, chat: str) -> list[Message]:
        return [m for m in self.messages if m.chat_id == str(chat)]

    def attempts_to(self, chat: str) -> list[Attempt]:
        return [a for a in self.attempts if a.chat_id == str(chat)]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` messages were accepted; False at the deadline."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._messages) >= count, timeout)

    def wait_for_attempts(self, count: int, timeout: float = 10.0) -> bool:
        """Block until at least ``count`` sendMessage requests arrived; False at the deadline."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._attempts) >= count, timeout)

    # -- used by the handler -----------------------------------------------------------------

    def _pick(self, chat: str) -> Rule | None:
        with self._lock:
            for key in (chat, None):
                if key in self._lasting:
                    return self._lasting[key]
            for key in (chat, None):
                queue = self._counted.get(key)
                if queue:
                    rule = queue[0]
                    assert rule.times is not None
                    rule.times -= 1
                    if rule.times <= 0:
                        queue.pop(0)
                    return rule
        return None

    def _attempt(self, chat: str, status: int) -> None:
        with self._changed:
            self._attempts.append(Attempt(chat, status, time.time()))
            self._changed.notify_all()

    def _send_message(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]] | Rule | None:
        chat = str(payload.get("chat_id", ""))
        rule = self._pick(chat)
        if rule is not None and rule.rule in ("trickle", "flood"):
            self._attempt(chat, 0)  # never properly answered
            return rule
        answer = self._answer(rule, payload, chat)
        if answer is not None:
            self._attempt(chat, answer[0])
        return answer

    def _answer(
        self, rule: Rule | None, payload: dict[str, Any], chat: str
    ) -> tuple[int, dict[str, Any]] | None:
        name = rule.rule if rule else "ok"
        if name == "migrate":
            assert rule is not None and rule.migrate_to is not None
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                migrate_to_chat_id=int(rule.migrate_to),
            )
        if rule and rule.description:
            return _error(int(name) if name.isdigit() else 400, rule.description)
        if name == "hang":
            assert rule is not None
            self._attempt(chat, 0)  # recorded on arrival: the caller may wait for it to hang
            self._stopping.wait(rule.seconds)
            return None
        if name == "429":
            assert rule is not None
            retry = int(rule.retry_after) if float(rule.retry_after).is_integer() else rule.retry_after
            return _error(429, f"Too Many Requests: retry after {retry}", retry_after=retry)
        if name == "500":
            assert rule is not None
            return _error(rule.status, "Internal Server Error")
        if name == "401":
            return _error(401, "Unauthorized")
        if name == "403":
            return _error(403, "Forbidden: bot was blocked by the user")
        if name == "400":
            return _error(400, "Bad Request: chat not found")
        return self._accept(payload, chat)

    def _accept(self, payload: dict[str, Any], chat: str) -> tuple[int, dict[str, Any]]:
        text = payload.get("text")
        if not chat:
            return _error(400, "Bad Request: chat_id is empty")
        if not isinstance(text, str) or not text.strip():
            return _error(400, "Bad Request: message text is empty")
        rendered = text
        if payload.get("parse_mode") == "HTML":
            try:
                rendered = render(text)
            except ParseError as exc:
                return _error(400, f"Bad Request: can't parse entities: {exc}")
        if utf16_len(rendered) > MAX_TEXT:
            return _error(400, "Bad Request: message is too long")
        with self._changed:
            message = Message(chat, text, rendered, time.time(), self._next_id, payload)
            self._next_id += 1
            self._messages.append(message)
            if self._record is not None:
                with self._record.open("a", encoding="utf-8") as handle:
                    row = {k: v for k, v in asdict(message).items() if k != "payload"}
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._changed.notify_all()
        result = {
            "message_id": message.message_id,
            "date": int(message.time),
            "chat": {"id": chat},
            "text": rendered,
        }
        return 200, {"ok": True, "result": result}

    def _admin(self, command: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        if path == "/__fake__/messages" and command == "GET":
            rows = [{k: v for k, v in asdict(m).items() if k != "payload"} for m in self.messages]
            return 200, {"ok": True, "result": rows}
        if path == "/__fake__/reset" and command == "POST":
            self.reset()
            return 200, {"ok": True}
        if path == "/__fake__/update" and command == "POST":
            try:
                spec = json.loads(body or b"{}")
                update_id = self.push_update(
                    spec["chat"], str(spec["text"]), user=spec.get("user", "ops"), topic=spec.get("topic")
                )
            except (ValueError, TypeError, KeyError) as exc:
                return 400, {"ok": False, "description": str(exc)}
            return 200, {"ok": True, "result": {"update_id": update_id}}
        if path == "/__fake__/rule" and command == "POST":
            try:
                spec = json.loads(body or b"{}")
                chat = spec.pop("chat", None)
                self.add_rule(Rule(**spec), None if chat is None else str(chat))
            except (ValueError, TypeError) as exc:
                return 400, {"ok": False, "description": str(exc)}
            return 200, {"ok": True}
        return 404, {"ok": False, "description": "Not Found"}


def parse_rule(text: str) -> tuple[Rule, str | None]:
    """``429,times=2,retry_after=1,chat=42`` -> (Rule, chat). Used by the command line."""
    name, *options = text.split(",")
    values: dict[str, Any] = {}
    chat: str | None = None
    for option in options:
        key, _, value = option.partition("=")
        if key == "chat":
            chat = value
        elif key in ("times", "status"):
            values[key] = int(value)
        elif key in ("retry_after", "seconds"):
            values[key] = float(value)
        elif key in ("description", "migrate_to"):
            values[key] = value
        else:
            raise ValueError(f"unknown rule option {key!r}")
    return Rule(name, **values), chat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake Telegram Bot API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--record", type=Path, help="append each accepted message to this JSONL file")
    parser.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="RULE[,times=N][,chat=ID][,retry_after=S]...",
        help=f"initial behaviour; RULE is one of {RULES}",
    )
    args = parser.parse_args(argv)
    fake = FakeTelegram(args.token, args.host, args.port, args.record)
    for text in args.rule:
        try:
            rule, chat = parse_rule(text)
            fake.add_rule(rule, chat)
        except (ValueError, TypeError) as exc:
            parser.error(str(exc))
    return serve_until_signalled(fake, lambda: f"telegram_api: listening on {fake.url} token={fake.token}")


if __name__ == "__main__":
    sys.exit(main())
