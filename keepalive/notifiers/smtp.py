"""The SMTP client the e-mail channel uses: connected under a send deadline, replies capped.

smtplib bounds each read (``timeout``) and each reply line (8 KiB), but not how many ``220-``
continuation lines a server may send, nor how long the whole exchange takes. The client here
registers its socket with the send's ``Deadline`` before reading the greeting, and reads every
reply through a reader that refuses more than ``MAX_REPLY`` bytes.
"""

from __future__ import annotations

import smtplib
import ssl
from typing import Any, Protocol

from keepalive.notifiers.deadline import Deadline

MAX_REPLY = 64 * 1024  # one SMTP reply, all its continuation lines together


class SMTPFactory(Protocol):
    """Opens a connected SMTP client; ``security == "ssl"`` means implicit TLS. The client's
    socket is registered with ``deadline`` before anything is read from it."""

    def __call__(
        self,
        host: str,
        port: int,
        *,
        security: str,
        timeout: float,
        context: ssl.SSLContext,
        deadline: Deadline,
    ) -> smtplib.SMTP: ...


class _CappedReader:
    """A reply stream that refuses more than ``cap`` bytes per reply: smtplib caps each
    line, not how many ``220-`` continuation lines a server may send."""

    def __init__(self, raw: Any, cap: int) -> None:
        self._raw = raw
        self.cap = cap
        self.left = cap

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._raw.readline(limit)
        self.left -= len(line)
        if self.left < 0:
            raise OSError(f"reply longer than {self.cap // 1024} KiB")
        return line

    def close(self) -> None:
        self._raw.close()


class _CappedReplies:
    """Mixin for smtplib clients: every reply is read through a ``_CappedReader``."""

    sock: Any
    file: Any

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = _CappedReader(self.sock.makefile("rb"), MAX_REPLY)
        if isinstance(self.file, _CappedReader):
            self.file.left = self.file.cap
        reply: tuple[int, bytes] = super().getreply()  # type: ignore[misc]
        return reply


class _SMTP(_CappedReplies, smtplib.SMTP):
    pass


class _SMTPSSL(_CappedReplies, smtplib.SMTP_SSL):
    pass


def connect_smtp(
    host: str, port: int, *, security: str, timeout: float, context: ssl.SSLContext, deadline: Deadline
) -> smtplib.SMTP:
    """The production SMTP factory."""
    smtp: smtplib.SMTP = (
        _SMTPSSL(timeout=timeout, context=context) if security == "ssl" else _SMTP(timeout=timeout)
    )
    # Registered before connecting: the greeting itself may be what never ends.
    deadline.watch_socket(smtp)
    # connect() does not set the name TLS verifies (SMTP_SSL's wrap, starttls()); the
    # constructor would, but it also connects, before the socket could be watched.
    smtp._host = host  # type: ignore[attr-defined]
    smtp.connect(host, port)
    return smtp
