"""Telegram channel: ``sendMessage`` with HTML parse mode, one chat per recipient.

Errors are classified here; retries and backoff live in the outbox:
    * 200 ``ok: true``              -> returns the message id
    * 429                           -> temporary, ``retry_after`` from ``parameters.retry_after``
    * 400 with ``parameters.migrate_to_chat_id`` (a group became a supergroup)
                                    -> sent again to the new id at once, remembered for later
                                       sends in this process, one warning line for the operator
    * other 4xx (400, 401, 403 ...) -> permanent, reason is Telegram's ``description``
    * 5xx, timeouts, network errors, OSError of ours (EMFILE), no complete answer within the
      total deadline, an answer over 1 MiB -> temporary
The bot token is part of every request URL, and requests/urllib3 repeat that URL in their
exception texts, so every reason is scrubbed of it before it leaves this module.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

from keepalive.alerts import Alert, AlertKind
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.notifiers.deadline import AnswerTooLarge, Deadline, DeadlineAdapter, read_capped
from keepalive.notifiers.text import ELLIPSIS, duration, kind_counts, one_line, utc
from keepalive.scrub import MASK, ScrubFilter, register_secret, scrub

MAX_TEXT = 4096  # Telegram's limit, counted here in UTF-16 code units to be safe
MAX_REASON = 300  # a server reason longer than this is noise in a notification
ICONS = {AlertKind.DOWN: "🔴", AlertKind.RECOVERED: "✅", AlertKind.TEST: "🧪", AlertKind.EXPIRING: "⏳"}

# urllib3 logs every request line ("POST /bot<token>/sendMessage") at DEBUG level. Handlers set
# up by the CLI scrub, but any other handler (a debugging session, pytest) would not.
log = logging.getLogger("keepalive.telegram")
_URLLIB3_LOG = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, ScrubFilter) for f in _URLLIB3_LOG.filters):
    _URLLIB3_LOG.addFilter(ScrubFilter())


def _units(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units): an emoji counts twice."""
    return len(text.encode("utf-16-le")) // 2


def _fit(raw: str, limit: int) -> str:
    """``raw`` HTML-escaped, at most ``limit`` units long.

    The cut is made between source characters, before their escaped forms are joined, so an
    entity such as ``&amp;`` is never split (Telegram rejects a message with a broken one)."""
    escaped = html.escape(raw)
    if _units(escaped) <= limit:
        return escaped
    pieces: list[str] = []
    used = 0
    for ch in raw:
        piece = html.escape(ch)
        if used + _units(piece) > limit - 1:
            break
        pieces.append(piece)
        used += _units(piece)
    return "".join(pieces) + ELLIPSIS


def _field(label: str, value: str) -> str:
    return f"<b>{label}:</b> {value}"


def _single(alert: Alert) -> str:
    head = f"{ICONS[alert.kind]} <b>{alert.kind}</b> · <b>{_fit(one_line(alert.target), 200)}</b>"
    lines = [head, _field("URL", _fit(one_line(alert.url), 500))]
    if alert.kind is AlertKind.TEST:
        lines.append(_field("Sent", utc(alert.at)))
    elif alert.kind is AlertKind.EXPIRING:
        lines.append(_field("Expires", utc(alert.since)))
    else:
        if alert.kind is AlertKind.RECOVERED and alert.downtime is not None:
            lines.append(_field("Downtime", duration(alert.downtime)))
        lines.append(_field("Down since", utc(alert.since)))
        lines.append(_field("Failed checks", str(alert.failed_checks)))
    if alert.remediation:
        lines.append(_field("Remediation", _fit(one_line(alert.remediation), 500)))
    lines.append(_field("Monitor", _fit(one_line(alert.host), 100)))
    # The reason is sized last, with the room the fixed fields leave, so only it is ever cut.
    label = "Last failure" if alert.kind is AlertKind.RECOVERED else "Reason"
    rest = "\n".join(lines)
    room = MAX_TEXT - _units(rest) - _units(f"\n<b>{label}:</b> ")
    reason = _field(label, _fit(one_line(alert.reason), min(room, MAX_REASON * 6)))
    return "\n".join([*lines[:2], reason, *lines[2:]])


def _digest_line(alert: Alert) -> str:
    name = _fit(one_line(alert.target), 80)
    url = _fit(one_line(alert.url), 150)
    text = f"{ICONS[alert.kind]} <b>{alert.kind}</b> <b>{name}</b> ({url})"
    if alert.kind is AlertKind.RECOVERED:
        down = f"down {duration(alert.downtime)}, " if alert.downtime is not None else ""
        return f"{text}: {down}last failure: {_fit(one_line(alert.reason), 150)}"
    if alert.kind is AlertKind.TEST:
        return f"{text}: test alert"
    if alert.kind is AlertKind.EXPIRING:
        return f"{text}: {_fit(one_line(alert.reason), 150)}"
    return (
        f"{text}: {_fit(one_line(alert.reason), 150)}, since {utc(alert.since)}, "
        f"{alert.failed_checks} failed checks"
    )


def _digest_header(alerts: Sequence[Alert]) -> str:
    hosts = ", ".join(dict.fromkeys(one_line(a.host) for a in alerts))
    return f"📋 <b>{len(alerts)} alerts</b> ({kind_counts(alerts)}) from <b>{_fit(hosts, 200)}</b>\n"


def digest_capacity(alerts: Sequence[Alert]) -> int:
    """How many of ``alerts``, from the first, one digest message can name in full."""
    # The header for all of them is at least as long as the header for any leading part.
    used = _units(_digest_header(alerts))
    for count, alert in enumerate(alerts):
        used += _units("\n" + _digest_line(alert))
        if used > MAX_TEXT:
            return max(1, count)
    return len(alerts)


def _digest(alerts: Sequence[Alert]) -> str:
    header = _digest_header(alerts)
    text = header
    for index, alert in enumerate(alerts):
        line = "\n" + _digest_line(alert)
        left = len(alerts) - index - 1
        # Keep room for the "and N more" line unless this is the last alert.
        reserve = _units(f"\n{ELLIPSIS} and {len(alerts)} more") if left else 0
        if _units(text) + _units(line) + reserve > MAX_TEXT:
            return text + f"\n{ELLIPSIS} and {len(alerts) - index} more"
        text += line
    return text


def build_text(alerts: Sequence[Alert]) -> str:
    """The HTML message for one alert, or a digest of several; at most 4096 characters.

    Every string that comes from a target, a server or the host is escaped, so a name like
    ``<b>&"'`` shows as written instead of being read as markup."""
    if not alerts:
        raise ValueError("build_text needs at least one alert")
    return _single(alerts[0]) if len(alerts) == 1 else _digest(alerts)


class Pacer:
    """Spaces messages out: at most one per ``per_chat`` seconds to a chat, one per
    ``per_group`` seconds to a group (a negative chat id), ``overall`` a second in total
    (Telegram's documented limits: 1/s per chat, 20/min per group, about 30/s per bot).

    Thread-safe: each caller reserves its slot under the lock, then sleeps outside it."""

    def __init__(
        self,
        per_chat: float = 1.0,
        overall: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        per_group: float = 3.0,
    ) -> None:
        self._per_chat = per_chat
        self._per_group = max(per_chat, per_group)
        self._gap = 1.0 / overall if overall > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_any = 0.0
        self._next_chat: dict[str, float] = {}

    def wait(self, chat: str) -> None:
        """Block until a message to ``chat`` may go."""
        spacing = self._per_group if chat.startswith("-") else self._per_chat
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_any, self._next_chat.get(chat, 0.0))
            self._next_any = slot + self._gap
            self._next_chat[chat] = slot + spacing
        if slot > now:
            self._sleep(slot - now)


class TelegramNotifier(Notifier):
    """Sends alerts to Telegram chats through the Bot API (or a self-hosted Bot API server).

    ``timeout`` bounds each read; ``deadline`` the whole request, whatever the server does
    (answers are read up to ``MAX_ANSWER`` bytes). The session gets a ``DeadlineAdapter``
    mounted for the API's URL."""

    channel = "telegram"
    MAX_ANSWER = 1 << 20  # a Bot API answer is a few hundred bytes; an endless one must end

    def __init__(
        self,
        token: str,
        chat_ids: Sequence[str],
        api_url: str = "https://api.telegram.org",
        session: requests.Session | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        per_chat_interval: float = 1.0,
        overall_rate: float = 25.0,
        *,
        deadline: float = 30.0,
        per_group_interval: float = 3.0,
        silent_recovery: bool = False,
    ) -> None:
        if not token:
            raise ValueError("TelegramNotifier needs a bot token (TELEGRAM_BOT_TOKEN)")
        if not chat_ids:
            raise ValueError("TelegramNotifier needs at least one chat id (TELEGRAM_CHAT_ID)")
        # Registered here as well as in the settings so a notifier built by hand is just as safe.
        register_secret(token)
        self._token = token
        self._chat_ids = tuple(chat_ids)
        base = api_url.rstrip("/")
        self._url = f"{base}/bot{token}/sendMessage"
        self._session = session if session is not None else requests.Session()
        self._session.mount(f"{base}/", DeadlineAdapter())
        self._timeout = timeout
        self._deadline = max(deadline, 0.001)
        self._pacer = Pacer(per_chat_interval, overall_rate, clock, sleep, per_group_interval)
        self._lock = threading.Lock()
        # A group upgraded to a supergroup has a new id; Telegram says which once per message.
        self._migrated: dict[str, str] = {}
        # TELEGRAM_SILENT_RECOVERY (SPEC 16): a message of recoveries only arrives without a sound.
        self._silent_recovery = silent_recovery

    def digest_capacity(self, alerts: Sequence[Alert]) -> int:
        """How many of ``alerts`` one digest names in full (the outbox sends the rest next)."""
        return digest_capacity(alerts)

    def recipients(self) -> Sequence[str]:
        """The chat ids every alert goes to."""
        return self._chat_ids

    def migrated(self) -> dict[str, str]:
        """Chat ids Telegram moved: configured id -> new id."""
        with self._lock:
            return dict(self._migrated)

    def moved_recipients(self) -> Mapping[str, str]:
        """The chat moves learnt from Telegram (see ``migrated``), for the outbox to keep."""
        return self.migrated()

    def follow_moves(self, moves: Mapping[str, str]) -> None:
        """Send to these new chat ids from now on (moves stored by an earlier process)."""
        with self._lock:
            for old, new in moves.items():
                if old in self._chat_ids:
                    self._migrated.setdefault(old, new)

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """Send one message to one chat; returns Telegram's message id. Raises NotifyError.

        ``reply_to``: a message id in that chat this one answers (a RECOVERED to its DOWN)."""
        text = build_text(alerts)
        with self._lock:
            chat = self._migrated.get(recipient, recipient)
        try:
            return self._post(chat, text, reply_to, self._quiet(alerts))
        except _Migrated as moved:
            with self._lock:
                self._migrated[recipient] = moved.new_chat
            log.warning(
                "telegram chat %s became a supergroup with id %s: sending there; "
                "set TELEGRAM_CHAT_ID to the new id",
                recipient,
                moved.new_chat,
            )
            # The old chat's message ids mean nothing in the new one: no reply there.
            return self._post(moved.new_chat, text, None, self._quiet(alerts))

    def _quiet(self, alerts: Sequence[Alert]) -> bool:
        return self._silent_recovery and all(a.kind is AlertKind.RECOVERED for a in alerts)

    def _post(self, chat: str, text: str, reply_to: str | None, quiet: bool = False) -> str | None:
        chat, topic = split_chat(chat)
        payload: dict[str, Any] = {
            "chat_id": chat,
            "text": text,
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            # Older self-hosted Bot API servers only know the pre-7.0 spelling.
            "disable_web_page_preview": True,
        }
        if topic is not None:
            payload["message_thread_id"] = topic  # a forum topic: -1001234567890:42
        if quiet:
            payload["disable_notification"] = True
        if reply_to is not None and reply_to.isdigit():
            # Threaded under the DOWN; if that message was deleted, send it anyway.
            payload["reply_parameters"] = {"message_id": int(reply_to), "allow_sending_without_reply": True}
        self._pacer.wait(chat)
        with Deadline(self._deadline) as deadline:
            try:
                response = self._session.post(
                    self._url, json=payload, timeout=self._timeout, allow_redirects=False, stream=True
                )
                try:
                    body = read_capped(response, self.MAX_ANSWER)
                finally:
                    response.close()
            except AnswerTooLarge as exc:
                raise NotifyError(str(exc)) from None
            except requests.Timeout:
                raise self._late(deadline) or NotifyError(f"timeout after {self._timeout:g} s") from None
            except requests.ConnectionError as exc:
                late = self._late(deadline)
                raise late or NotifyError(self._clean(f"connection error: {_root_cause(exc)}")) from None
            except requests.RequestException as exc:
                reason = self._clean(f"request failed: {type(exc).__name__}: {exc}")
                raise self._late(deadline) or NotifyError(reason) from None
            except OSError as exc:
                # Ours, e.g. EMFILE while building the connection: temporary like a network error.
                raise NotifyError(self._clean(f"{type(exc).__name__}: {exc}")) from None
            late = self._late(deadline)
            if late is not None:
                raise late
        return self._classify(response.status_code, response.headers.get("Retry-After", ""), body)

    def _late(self, deadline: Deadline) -> NotifyError | None:
        if not deadline.expired:
            return None
        return NotifyError(f"no complete answer within {self._deadline:g} s")

    def _classify(self, status: int, retry_header: str, body: bytes) -> str | None:
        data = _json_object(body)
        description = self._clean(str(data.get("description") or "")) if data else ""
        params = data.get("parameters")
        params = params if isinstance(params, dict) else {}
        if status == 200 and data.get("ok") is True:
            result = data.get("result")
            message_id = result.get("message_id") if isinstance(result, dict) else None
            return None if message_id is None else str(message_id)
        if status == 429:
            retry_after = params.get("retry_after")
            if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
                retry_after = float(retry_header) if retry_header.isdigit() else None
            raise NotifyError(
                description or "HTTP 429",
                retry_after=None if retry_after is None else max(0.0, float(retry_after)),
            )
        new_chat = params.get("migrate_to_chat_id")
        if status == 400 and isinstance(new_chat, int) and not isinstance(new_chat, bool):
            raise _Migrated(str(new_chat))
        if 400 <= status < 500:
            # Telegram's 4xx descriptions start with the error's name ("Forbidden: bot was
            # blocked by the user"), so they stand on their own as the recorded reason.
            raise NotifyError(description or f"HTTP {status}", permanent=True)
        suffix = f": {description}" if description else ""
        if status == 200:
            raise NotifyError(f"unexpected answer (ok is not true){suffix}")
        raise NotifyError(f"HTTP {status}{suffix}")

    def _clean(self, text: str) -> str:
        """Text safe to record: no token (raw or URL-encoded), one line, bounded length."""
        for form in (self._token, quote(self._token, safe=""), quote(self._token)):
            text = text.replace(form, MASK)
        return scrub(one_line(text))[:MAX_REASON]


def split_chat(chat: str) -> tuple[str, int | None]:
    """``-1001234567890:42`` -> (``-1001234567890``, 42): a chat id and its forum topic."""
    head, sep, topic = chat.rpartition(":")
    if sep and head and topic.isdigit():
        return head, int(topic)
    return chat, None


class _Migrated(Exception):
    """Telegram's 400 with ``parameters.migrate_to_chat_id``: the group moved."""

    def __init__(self, new_chat: str) -> None:
        super().__init__(new_chat)
        self.new_chat = new_chat


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _root_cause(exc: BaseException) -> str:
    """The innermost cause, which names what went wrong ("Connection refused") without the
    layers of wrapping (and the URL) that requests adds around it."""
    seen: set[int] = set()
    inner: BaseException = exc
    while True:
        nested = inner.__cause__ or inner.__context__
        if nested is None and inner.args and isinstance(inner.args[0], BaseException):
            nested = inner.args[0]
        reason = getattr(inner, "reason", None)
        if nested is None and isinstance(reason, BaseException):
            nested = reason
        if nested is None or id(nested) in seen:
            break
        seen.add(id(inner))
        inner = nested
    return str(inner) or type(inner).__name__
