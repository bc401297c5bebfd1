"""Telegram channel: ``sendMessage`` with HTML parse mode, one chat per recipient.

Errors are classified here; retries and backoff live in the outbox:
    * 200 ``ok: true``              -> returns the message id
    * 429                           -> temporary, ``retry_after`` from ``parameters.retry_after``
    * other 4xx (400, 401, 403 ...) -> permanent, reason is Telegram's ``description``
    * 5xx, timeouts, network errors -> temporary
The bot token is part of every request URL, and requests/urllib3 repeat that URL in their
exception texts, so every reason is scrubbed of it before it leaves this module.
"""

from __future__ import annotations

import html
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

import requests

from keepalive.alerts import Alert, AlertKind
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.text import ELLIPSIS, duration, kind_counts, one_line, utc
from keepalive.scrub import MASK, ScrubFilter, register_secret, scrub

MAX_TEXT = 4096  # Telegram's limit, counted here in UTF-16 code units to be safe
MAX_REASON = 300  # a server reason longer than this is noise in a notification
ICONS = {AlertKind.DOWN: "🔴", AlertKind.RECOVERED: "✅", AlertKind.TEST: "🧪"}

# urllib3 logs every request line ("POST /bot<token>/sendMessage") at DEBUG level. Handlers set
# up by the CLI scrub, but any other handler (a debugging session, pytest) would not.
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
    else:
        if alert.kind is AlertKind.RECOVERED and alert.downtime is not None:
            lines.append(_field("Downtime", duration(alert.downtime)))
        lines.append(_field("Down since", utc(alert.since)))
        lines.append(_field("Failed checks", str(alert.failed_checks)))
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
    """Spaces messages out: at most one per ``per_chat`` seconds to a chat, ``overall`` a second
    in total (Telegram's documented limits are 1/s per chat and about 30/s per bot).

    Thread-safe: each caller reserves its slot under the lock, then sleeps outside it."""

    def __init__(
        self,
        per_chat: float = 1.0,
        overall: float = 25.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._per_chat = per_chat
        self._gap = 1.0 / overall if overall > 0 else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_any = 0.0
        self._next_chat: dict[str, float] = {}

    def wait(self, chat: str) -> None:
        """Block until a message to ``chat`` may go."""
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_any, self._next_chat.get(chat, 0.0))
            self._next_any = slot + self._gap
            self._next_chat[chat] = slot + self._per_chat
        if slot > now:
            self._sleep(slot - now)


class TelegramNotifier:
    """Sends alerts to Telegram chats through the Bot API (or a self-hosted Bot API server)."""

    channel = "telegram"

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
    ) -> None:
        if not token:
            raise ValueError("TelegramNotifier needs a bot token (TELEGRAM_BOT_TOKEN)")
        if not chat_ids:
            raise ValueError("TelegramNotifier needs at least one chat id (TELEGRAM_CHAT_ID)")
        # Registered here as well as in the settings so a notifier built by hand is just as safe.
        register_secret(token)
        self._token = token
        self._chat_ids = tuple(chat_ids)
        self._url = f"{api_url.rstrip('/')}/bot{token}/sendMessage"
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._pacer = Pacer(per_chat_interval, overall_rate, clock, sleep)

    def digest_capacity(self, alerts: Sequence[Alert]) -> int:
        """How many of ``alerts`` one digest names in full (the outbox sends the rest next)."""
        return digest_capacity(alerts)

    def recipients(self) -> Sequence[str]:
        """The chat ids every alert goes to."""
        return self._chat_ids

    def send(self, recipient: str, alerts: Sequence[Alert]) -> str | None:
        """Send one message to one chat; returns Telegram's message id. Raises NotifyError."""
        payload = {
            "chat_id": recipient,
            "text": build_text(alerts),
            "parse_mode": "HTML",
            "link_preview_options": {"is_disabled": True},
            # Older self-hosted Bot API servers only know the pre-7.0 spelling.
            "disable_web_page_preview": True,
        }
        self._pacer.wait(recipient)
        try:
            response = self._session.post(
                self._url, json=payload, timeout=self._timeout, allow_redirects=False
            )
        except requests.Timeout:
            raise NotifyError(f"timeout after {self._timeout:g} s") from None
        except requests.ConnectionError as exc:
            raise NotifyError(self._clean(f"connection error: {_root_cause(exc)}")) from None
        except requests.RequestException as exc:
            raise NotifyError(self._clean(f"request failed: {type(exc).__name__}: {exc}")) from None
        return self._classify(response)

    def _classify(self, response: requests.Response) -> str | None:
        status = response.status_code
        data = _json_object(response)
        description = self._clean(str(data.get("description") or "")) if data else ""
        if status == 200 and data.get("ok") is True:
            result = data.get("result")
            message_id = result.get("message_id") if isinstance(result, dict) else None
            return None if message_id is None else str(message_id)
        if status == 429:
            params = data.get("parameters")
            retry_after = params.get("retry_after") if isinstance(params, dict) else None
            if not isinstance(retry_after, int | float) or isinstance(retry_after, bool):
                header = response.headers.get("Retry-After", "")
                retry_after = float(header) if header.isdigit() else None
            raise NotifyError(
                description or "HTTP 429",
                retry_after=None if retry_after is None else max(0.0, float(retry_after)),
            )
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


def _json_object(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
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
