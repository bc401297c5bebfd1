"""The bot reads its chats (SPEC 16): ``getUpdates`` long polling, on threads of its own.

Threads: the poller waits in ``getUpdates`` (up to ``POLL_TIMEOUT`` s) and hands each command to
the event loop (``handle``); the replier sends answers from a bounded queue. Neither touches
the checks' loop except for that hand-over, nor the delivery worker, so a slow or unreachable
Telegram never stalls a check or an alert.

Rules:
- only chats of TELEGRAM_CHAT_ID are answered (a topic id after the colon does not matter:
  a command is answered in the topic it came from); any other chat gets nothing, not even an
  error, and is counted in ``refused_total`` (``keepalive_telegram_commands_refused_total``);
- the next offset is saved (atomically, fsynced) BEFORE a command runs: a crash or restart in
  between skips that command, it never runs it twice;
- a command older than ``STALE_AFTER`` (sent while the monitor was not reading) is not run;
  it is answered saying so;
- 409 Conflict (another program reads this bot's updates, or a webhook is set) is reported once
  per episode (event ``telegram_commands_conflict``) and polled again only every ``CONFLICT_BACKOFF`` s;
- 429 ``retry_after`` is honoured for polling and replies; replies are also paced like alerts
  (keepalive.notifiers.telegram.Pacer);
- the bot token is in every URL and is scrubbed from every error text.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from keepalive.actions.commands import COMMANDS
from keepalive.engine.announcer import Reporter
from keepalive.engine.statestore import write_atomically
from keepalive.notifiers.deadline import AnswerTooLarge, Deadline, DeadlineAdapter, read_capped
from keepalive.notifiers.telegram import Pacer, split_chat
from keepalive.scrub import MASK, register_secret, scrub

POLL_TIMEOUT = 25  # seconds Telegram holds a getUpdates open
CONFLICT_BACKOFF = 60.0
BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
STALE_AFTER = 300.0
MAX_ANSWER = 4 << 20  # 100 updates are well below this
MAX_QUEUED_REPLIES = 200
REPLY_TRIES = 4
MAX_REFUSED_REPORTED = 100  # distinct foreign chats named in events (each once)
OFFSET_FILE = "telegram_offset.json"

log = logging.getLogger("keepalive.telegram_commands")


class BotError(Exception):
    """A Bot API call that did not succeed: ``status`` 0 for network errors."""

    def __init__(self, status: int, description: str, retry_after: float | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after


class BotApi:
    """The few Bot API methods the commands need, over ``requests`` with a total deadline."""

    def __init__(self, token: str, api_url: str, session: requests.Session | None = None) -> None:
        register_secret(token)
        self._token = token
        self._base = f"{api_url.rstrip('/')}/bot{token}/"
        self._session = session if session is not None else requests.Session()
        self._session.mount(api_url.rstrip("/") + "/", DeadlineAdapter())
        self._lock = threading.Lock()
        self._calls: set[Deadline] = set()
        self._aborted = False

    def abort(self) -> None:
        """End every call in flight now (their sockets are shut down) and refuse new ones."""
        with self._lock:
            self._aborted = True
            calls = list(self._calls)
        for deadline in calls:
            deadline.expire()

    def call(self, method: str, payload: dict[str, Any], wait: float = 10.0) -> Any:
        """``result`` of one call; raises BotError. ``wait``: how long the answer may take."""
        deadline = Deadline(wait + 10.0)
        with self._lock:
            if self._aborted:
                raise BotError(0, "stopped")
            self._calls.add(deadline)
        try:
            with deadline:
                response = self._session.post(
                    self._base + method,
                    json=payload,
                    timeout=(5.0, wait + 5.0),
                    allow_redirects=False,
                    stream=True,
                )
                try:
                    body = read_capped(response, MAX_ANSWER)
                finally:
                    response.close()
        except (requests.RequestException, OSError, AnswerTooLarge) as exc:
            raise BotError(0, self._clean(f"{type(exc).__name__}: {exc}")) from None
        finally:
            with self._lock:
                self._calls.discard(deadline)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise BotError(response.status_code, f"HTTP {response.status_code}: not a Bot API answer")
        if data.get("ok") is True:
            return data.get("result")
        params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
        retry = params.get("retry_after") if params else None
        retry_after = float(retry) if isinstance(retry, int | float) and not isinstance(retry, bool) else None
        description = self._clean(str(data.get("description") or f"HTTP {response.status_code}"))
        raise BotError(response.status_code, description, retry_after)

    def _clean(self, text: str) -> str:
        for form in (self._token, quote(self._token, safe="")):
            text = text.replace(form, MASK)
        return scrub(" ".join(text.split()))[:300]


class OffsetStore:
    """The next update id to ask for, in ``MONITOR_STATE_DIR/telegram_offset.json``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / OFFSET_FILE

    def load(self) -> int | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("telegram offset file %s unreadable (%s): starting from new updates", self.path, exc)
            return None
        offset = data.get("offset") if isinstance(data, dict) else None
        return offset if isinstance(offset, int) and not isinstance(offset, bool) else None

    def save(self, offset: int) -> None:
        write_atomically(self.path, json.dumps({"offset": offset}).encode())


@dataclass(frozen=True, slots=True)
class Incoming:
    """One command from an allowed chat."""

    text: str
    chat: str
    topic: int | None
    user: str  # "@name" or the numeric id


# Runs one command (on the loop) and returns its answer; ``later`` sends further answers.
Handle = Callable[[Incoming, Callable[[str], None]], str]


class Replier:
    """Sends answers from a bounded queue, paced, honouring 429; on its own thread."""

    def __init__(self, api: BotApi, stop: threading.Event, pacer: Pacer | None = None) -> None:
        self._api = api
        self._stop = stop
        self._pacer = pacer if pacer is not None else Pacer()
        self._queue: queue.Queue[tuple[str, int | None, str]] = queue.Queue(MAX_QUEUED_REPLIES)
        self._thread = threading.Thread(target=self._run, name="telegram-replies", daemon=True)
        self.dropped = 0

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        with suppress(queue.Full):
            self._queue.put_nowait(("", None, ""))  # wakes the thread to see the stop
        self._thread.join(timeout)

    def send(self, chat: str, topic: int | None, text: str) -> None:
        """Queue an answer; thread-safe, never blocks (a full queue drops it, counted)."""
        try:
            self._queue.put_nowait((chat, topic, text))
        except queue.Full:
            self.dropped += 1
            log.error("telegram answer dropped: %d answers already wait", MAX_QUEUED_REPLIES)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                chat, topic, text = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if chat:
                self._deliver(chat, topic, text)

    def _deliver(self, chat: str, topic: int | None, text: str) -> None:
        payload: dict[str, Any] = {
            "chat_id": chat,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
        }
        if topic is not None:
            payload["message_thread_id"] = topic
        for attempt in range(REPLY_TRIES):
            self._pacer.wait(chat)
            try:
                self._api.call("sendMessage", payload)
                return
            except BotError as exc:
                if 400 <= exc.status < 500 and exc.status != 429:
                    log.error("telegram answer to %s refused: %s", chat, exc.description)
                    return
                wait = exc.retry_after if exc.retry_after is not None else BACKOFF[attempt]
                log.warning("telegram answer to %s failed (%s): again in %g s", chat, exc.description, wait)
                if self._stop.wait(wait):
                    return
        log.error("telegram answer to %s given up after %d tries", chat, REPLY_TRIES)


class CommandPoller:
    """Long-polls ``getUpdates`` and runs the commands of allowed chats, until ``stop()``."""

    def __init__(
        self,
        api: BotApi,
        chats: Sequence[str],
        handle: Handle,
        offsets: OffsetStore,
        reporter: Reporter,
        *,
        poll_timeout: int = POLL_TIMEOUT,
        clock: Callable[[], float] = time.time,
        conflict_backoff: float = CONFLICT_BACKOFF,
        pacer: Pacer | None = None,
    ) -> None:
        self._api = api
        self._ids: set[str] = set()
        self._names: set[str] = set()
        for configured in chats:
            chat, _ = split_chat(configured)
            (self._names if chat.startswith("@") else self._ids).add(chat.lower())
        self._handle = handle
        self._offsets = offsets
        self.reporter = reporter
        self._poll_timeout = poll_timeout
        self._clock = clock
        self._conflict_backoff = conflict_backoff
        self._stop = threading.Event()
        self.replier = Replier(api, self._stop, pacer)
        self._thread = threading.Thread(target=self._run, name="telegram-commands", daemon=True)
        self._lock = threading.Lock()
        self._refused_total = 0
        self._refused_seen: set[str] = set()
        self.commands_total = 0
        self.registered = False

    @property
    def refused_total(self) -> int:
        with self._lock:
            return self._refused_total

    def start(self) -> None:
        self.replier.start()
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; a getUpdates in flight is abandoned (its thread is a daemon)."""
        self._stop.set()
        self._api.abort()  # a getUpdates held open by Telegram ends now, not in 25 s
        self._thread.join(timeout)
        self.replier.join(timeout)

    # ------------------------------------------------------------------ the loop

    def _run(self) -> None:
        offset = self._offsets.load()
        failures = 0
        conflict = False
        while not self._stop.is_set():
            if not self.registered:
                self._register()
            payload: dict[str, Any] = {"timeout": self._poll_timeout, "allowed_updates": ["message"]}
            if offset is not None:
                payload["offset"] = offset
            try:
                updates = self._api.call("getUpdates", payload, wait=float(self._poll_timeout))
            except BotError as exc:
                wait = self._failed(exc, failures, conflict)
                conflict = conflict or exc.status == 409
                failures += 1
                self._stop.wait(wait)
                continue
            if conflict:
                self.reporter.report("telegram_commands_resumed", "telegram commands: reading updates again")
            failures, conflict = 0, False
            for update in sorted(updates if isinstance(updates, list) else [], key=_update_id):
                if self._stop.is_set():
                    break
                update_id = _update_id(update)
                if update_id < 0 or (offset is not None and update_id < offset):
                    continue
                try:
                    # Saved first: if the command then crashes the process, it is not run again.
                    self._offsets.save(update_id + 1)
                except OSError as exc:
                    self.reporter.report(
                        "telegram_commands_failed",
                        "telegram commands: the update offset cannot be saved; commands wait",
                        logging.ERROR,
                        error=str(exc),
                    )
                    self._stop.wait(BACKOFF[-1])
                    break
                offset = update_id + 1
                self._take(update)

    def _failed(self, exc: BotError, failures: int, conflict: bool) -> float:
        if exc.status == 409:
            if not conflict:
                self.reporter.report(
                    "telegram_commands_conflict",
                    "telegram commands: another program reads this bot's updates (409 Conflict); "
                    f"retrying every {self._conflict_backoff:g} s",
                    logging.WARNING,
                    error=exc.description,
                )
            return self._conflict_backoff
        if exc.retry_after is not None:
            return exc.retry_after
        wait = BACKOFF[min(failures, len(BACKOFF) - 1)]
        if failures in (0, 3) or exc.status in (401, 404):
            self.reporter.report(
                "telegram_commands_failed",
                "telegram commands: getUpdates failed",
                logging.WARNING,
                error=exc.description,
                status=exc.status,
                retry_in=wait,
            )
        return wait

    def _register(self) -> None:
        """setMyCommands, so the phone offers the commands; tried again until it works."""
        commands = [{"command": name, "description": what[:256]} for name, _, what in COMMANDS]
        try:
            self._api.call("setMyCommands", {"commands": commands})
        except BotError as exc:
            log.warning("telegram setMyCommands failed: %s", exc.description)
            return
        self.registered = True

    def _take(self, update: dict[str, Any]) -> None:
        message = update.get("message")
        if not isinstance(message, dict):
            return
        chat = _table(message.get("chat"))
        chat_id = str(chat.get("id", ""))
        username = chat.get("username")
        allowed = chat_id.lower() in self._ids or (
            isinstance(username, str) and f"@{username}".lower() in self._names
        )
        text = message.get("text")
        if not allowed:
            self._refuse(chat_id)
            return
        if not isinstance(text, str) or not text.startswith("/"):
            return  # people talking in the group: not for the bot
        topic_id = message.get("message_thread_id")
        topic = topic_id if message.get("is_topic_message") and isinstance(topic_id, int) else None
        sender = _table(message.get("from"))
        user = (
            f"@{sender['username']}"
            if isinstance(sender.get("username"), str)
            else str(sender.get("id", "?"))
        )

        def later(answer: str) -> None:
            self.replier.send(chat_id, topic, answer)

        sent = message.get("date")
        if isinstance(sent, int | float) and self._clock() - sent > STALE_AFTER:
            self.reporter.report(
                "telegram_command",
                "telegram command",
                who=user,
                chat=chat_id,
                command=text[:200],
                result="stale",
            )
            minutes = int(self._clock() - sent) // 60
            later(f"Not run: this command was sent {minutes} min ago, while the monitor was not reading.")
            return
        self.commands_total += 1
        try:
            answer = self._handle(Incoming(text[:1000], chat_id, topic, user), later)
        except Exception as exc:  # the loop is gone (stopping) or the hand-over timed out
            log.error("telegram command %r not answered: %s", text[:50], exc)
            return
        later(answer)

    def _refuse(self, chat_id: str) -> None:
        with self._lock:
            self._refused_total += 1
            first = chat_id not in self._refused_seen and len(self._refused_seen) < MAX_REFUSED_REPORTED
            if first:
                self._refused_seen.add(chat_id)
        if first:
            # Named once per chat: a stranger writing a thousand times fills no log.
            self.reporter.report(
                "telegram_command_refused",
                "telegram command from a chat not in TELEGRAM_CHAT_ID ignored",
                chat=chat_id,
            )


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _update_id(update: Any) -> int:
    value = update.get("update_id") if isinstance(update, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else -1
