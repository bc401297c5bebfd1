"""One JSON POST under a total deadline, and what its HTTP status means (webhooks, Alertmanager).

Status classes (SPEC 17): 2xx accepted; 408, 429 (``Retry-After`` honoured) and 5xx temporary;
any other answer (4xx, and 3xx: redirects are not followed, a moved endpoint is a setting to
fix) permanent. Network errors, timeouts and an answer larger than the cap are temporary.
Every reason is one scrubbed line: a URL may carry a token.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import requests

from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.deadline import AnswerTooLarge, Deadline, DeadlineAdapter, read_capped
from keepalive.notifiers.text import one_line
from keepalive.scrub import scrub

MAX_ANSWER = 64 * 1024  # an answer is read only for its first line of error text
MAX_REASON = 300
MAX_RETRY_AFTER = 3600.0


def clean(text: str, *hidden: str) -> str:
    """``text`` as a recorded reason: the ``hidden`` strings (URLs) and secrets masked, one line."""
    for value in hidden:
        if value:
            text = text.replace(value, "<url>")
    return scrub(one_line(text))[:MAX_REASON]


def retry_after(header: str, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), at most an hour."""
    header = header.strip()
    if not header:
        return None
    if header.isdigit():
        return min(float(header), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, when - now), MAX_RETRY_AFTER)


def classify(status: int, retry_header: str, body: bytes, now: float) -> None:
    """Return when ``status`` means accepted; raise the NotifyError it means otherwise."""
    if 200 <= status < 300:
        return
    text = clean(body[:200].decode("utf-8", "replace"))
    suffix = f": {text}" if text else ""
    if status == 429:
        raise NotifyError(f"HTTP 429{suffix}", retry_after=retry_after(retry_header, now))
    if status == 408 or status >= 500:
        raise NotifyError(f"HTTP {status}{suffix}")
    if 300 <= status < 400:
        raise NotifyError(f"HTTP {status} (redirects are not followed: fix the URL)", permanent=True)
    raise NotifyError(f"HTTP {status}{suffix}", permanent=True)


class JsonPoster:
    """POSTs bodies with a per-read ``timeout`` and a total ``deadline`` (see deadline.py)."""

    def __init__(
        self, session: requests.Session | None = None, timeout: float = 10.0, deadline: float = 30.0
    ) -> None:
        # HTTPS_PROXY / NO_PROXY from the environment apply, as for Telegram: a monitor that
        # reaches Slack or a remote Alertmanager only through a proxy must still alert (the
        # deadline watches proxied connections too).
        self._session = session if session is not None else requests.Session()
        adapter = DeadlineAdapter()
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._timeout = timeout
        self._deadline = max(deadline, 0.001)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """(status, Retry-After header, first bytes of the answer). Raises NotifyError
        (temporary) when no complete answer came."""
        sent: dict[str, Any] = {"Content-Type": "application/json", "User-Agent": "keepalive-monitor"}
        sent.update(headers)
        with Deadline(self._deadline) as deadline:
            try:
                response = self._session.post(
                    url, data=body, headers=sent, timeout=self._timeout, allow_redirects=False, stream=True
                )
                try:
                    answer = read_capped(response, MAX_ANSWER)
                except AnswerTooLarge:
                    # The status line is in: a huge error page still says what it is.
                    answer = b""
                finally:
                    response.close()
            except requests.Timeout:
                raise self._late(deadline) or NotifyError(f"timeout after {self._timeout:g} s") from None
            except requests.ConnectionError as exc:
                raise self._late(deadline) or NotifyError(
                    clean(f"connection error: {_root_cause(exc)}", url)
                ) from None
            except requests.RequestException as exc:
                raise self._late(deadline) or NotifyError(
                    clean(f"request failed: {type(exc).__name__}: {exc}", url)
                ) from None
            except OSError as exc:
                raise NotifyError(clean(f"{type(exc).__name__}: {exc}", url)) from None
            late = self._late(deadline)
            if late is not None:
                raise late
        return response.status_code, response.headers.get("Retry-After", ""), answer

    def _late(self, deadline: Deadline) -> NotifyError | None:
        return NotifyError(f"no complete answer within {self._deadline:g} s") if deadline.expired else None


def _root_cause(exc: BaseException) -> str:
    inner: BaseException = exc
    seen: set[int] = set()
    while id(inner) not in seen:
        seen.add(id(inner))
        nested = inner.__cause__ or inner.__context__
        reason = getattr(inner, "reason", None)
        if nested is None and isinstance(reason, BaseException):
            nested = reason
        if nested is None and inner.args and isinstance(inner.args[0], BaseException):
            nested = inner.args[0]
        if nested is None:
            break
        inner = nested
    return str(inner) or type(inner).__name__
