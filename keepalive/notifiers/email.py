"""E-mail channel: one SMTP transaction per recipient, so each address is tracked on its own.

Errors are classified here; retries and backoff live in the outbox:
    * permanent: authentication refused (535), the recipient or sender refused with a 5xx, the
      message itself refused with a 5xx (spam, too big: sending it again cannot help);
    * temporary: any 4xx (451 greylisting, 421), disconnects, refused or timed-out
      connections, TLS failures, anything else.
Reasons carry the server's own text; the password never appears in one.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from keepalive.alerts import Alert, AlertKind
from keepalive.notifiers.base import NotifyError
from keepalive.notifiers.text import clip, duration, kind_counts, one_line, utc
from keepalive.scrub import MASK, register_secret, scrub

SECURITY_MODES = ("starttls", "ssl", "none")
MAX_SUBJECT = 150
MAX_REASON = 300


class SMTPFactory(Protocol):
    """Opens a connected SMTP client; ``security == "ssl"`` means implicit TLS."""

    def __call__(
        self, host: str, port: int, *, security: str, timeout: float, context: ssl.SSLContext
    ) -> smtplib.SMTP: ...


def connect_smtp(
    host: str, port: int, *, security: str, timeout: float, context: ssl.SSLContext
) -> smtplib.SMTP:
    """The production SMTP factory."""
    if security == "ssl":
        return smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    return smtplib.SMTP(host, port, timeout=timeout)


def _subject_name(alert: Alert) -> str:
    return one_line(alert.target) or "(unnamed)"


def subject(alerts: Sequence[Alert]) -> str:
    """``[DOWN] name``, ``[RECOVERED] name``, ``[TEST] name`` or ``[DOWN x3, RECOVERED x1] 4 alerts``."""
    if len(alerts) == 1:
        text = f"[{alerts[0].kind}] {_subject_name(alerts[0])}"
    else:
        text = f"[{kind_counts(alerts)}] {len(alerts)} alerts"
    return clip(text, MAX_SUBJECT)


def _block(alert: Alert) -> list[str]:
    rows = [
        ("Target", one_line(alert.target)),
        ("URL", one_line(alert.url)),
        ("State", str(alert.kind)),
    ]
    if alert.kind is AlertKind.TEST:
        rows.append(("Note", "a test alert: the e-mail channel works"))
        rows.append(("Sent", utc(alert.at)))
    else:
        label = "Last failure" if alert.kind is AlertKind.RECOVERED else "Reason"
        rows.append((label, clip(one_line(alert.reason), MAX_REASON)))
        rows.append(("Down since", utc(alert.since)))
        if alert.kind is AlertKind.RECOVERED and alert.downtime is not None:
            rows.append(("Downtime", duration(alert.downtime)))
        rows.append(("Failed checks", str(alert.failed_checks)))
    rows.append(("Monitor host", one_line(alert.host)))
    rows.append(("Alert id", alert.id))
    return [f"{label + ':':<15}{value}" for label, value in rows]


def _body(alerts: Sequence[Alert]) -> str:
    if len(alerts) == 1:
        alert = alerts[0]
        lines = [f"{alert.kind}: {_subject_name(alert)}", ""]
        lines += _block(alert)
    else:
        lines = [f"{len(alerts)} alerts ({kind_counts(alerts)}), oldest first.", ""]
        for index, alert in enumerate(alerts, 1):
            lines.append(f"{index}. {alert.kind}: {_subject_name(alert)}")
            lines += ["   " + line for line in _block(alert)]
            lines.append("")
    lines += ["", "-- ", "Keep-Alive Monitor"]
    return "\n".join(lines) + "\n"


def build_message(alerts: Sequence[Alert], sender: str, recipient: str) -> EmailMessage:
    """The e-mail for one alert or a digest: Date, Message-ID, a safe subject, a plain-text body.

    Target names are reduced to one line before they reach a header, so a name holding CR/LF
    cannot add a header of its own."""
    if not alerts:
        raise ValueError("build_message needs at least one alert")
    message = EmailMessage()
    message["Subject"] = subject(alerts)
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = formatdate(localtime=False, usegmt=True)
    # make_msgid() without a domain asks DNS for this host's FQDN, which can hang for seconds.
    domain = sender.rpartition("@")[2] or "keepalive.invalid"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message.set_content(_body(alerts))
    return message


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class EmailNotifier:
    """Sends alerts by SMTP: STARTTLS (default), implicit TLS ("ssl") or plain ("none", a local
    relay only). Certificates are verified unless the caller passes its own ``ssl_context``."""

    channel = "email"

    def __init__(
        self,
        server: str,
        port: int,
        security: str,
        username: str | None,
        password: str | None,
        sender: str,
        recipients: Sequence[str],
        timeout: float = 20.0,
        smtp_factory: SMTPFactory = connect_smtp,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"SMTP security {security!r} is invalid: expected one of {SECURITY_MODES}")
        if not recipients:
            raise ValueError("EmailNotifier needs at least one recipient (EMAIL_RECIPIENT)")
        register_secret(password)
        self._server = server
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._sender = sender
        self._recipients = tuple(recipients)
        self._timeout = timeout
        self._factory = smtp_factory
        self._context = ssl_context if ssl_context is not None else ssl.create_default_context()

    def recipients(self) -> Sequence[str]:
        """The addresses every alert goes to, each in its own transaction."""
        return self._recipients

    def send(self, recipient: str, alerts: Sequence[Alert]) -> str | None:
        """Deliver one e-mail to one address; returns its Message-ID. Raises NotifyError."""
        message = build_message(alerts, self._sender, recipient)
        try:
            self._transmit(message, recipient)
        except NotifyError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise self._error(
                f"authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}", True
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = exc.recipients.get(recipient, (0, b"refused"))
            raise self._error(f"recipient refused: {code} {_text(text)}", code >= 500) from None
        except smtplib.SMTPSenderRefused as exc:
            reason = f"sender refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            raise self._error(reason, exc.smtp_code >= 500) from None
        except smtplib.SMTPDataError as exc:
            reason = f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            raise self._error(reason, exc.smtp_code >= 500) from None
        except smtplib.SMTPResponseException as exc:
            raise self._error(f"SMTP error: {exc.smtp_code} {_text(exc.smtp_error)}", False) from None
        except smtplib.SMTPServerDisconnected as exc:
            raise self._error(f"server disconnected: {exc}", False) from None
        except ssl.SSLError as exc:
            detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            raise self._error(f"TLS error: {detail}", False) from None
        except TimeoutError:
            raise self._error(f"timeout after {self._timeout:g} s", False) from None
        except ConnectionRefusedError:
            raise self._error("connection refused", False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self._error(f"{type(exc).__name__}: {exc}", False) from None
        return str(message["Message-ID"])

    def _transmit(self, message: EmailMessage, recipient: str) -> None:
        smtp = self._factory(
            self._server, self._port, security=self._security, timeout=self._timeout, context=self._context
        )
        try:
            if self._security == "starttls":
                smtp.starttls(context=self._context)
            if self._username:
                smtp.login(self._username, self._password or "")
            smtp.send_message(message, from_addr=self._sender, to_addrs=[recipient])
        except BaseException:
            smtp.close()
            raise
        # The server has accepted the message. A failing QUIT must not turn that into an error,
        # or the outbox would send the same alert again.
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def _error(self, reason: str, permanent: bool) -> NotifyError:
        if self._password:
            reason = reason.replace(self._password, MASK)
        # Scrub before clipping: a cut through a secret would leave a fragment scrub() cannot see.
        return NotifyError(clip(scrub(one_line(reason)), MAX_REASON), permanent=permanent)
