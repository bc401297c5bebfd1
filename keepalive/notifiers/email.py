"""E-mail channel: one SMTP transaction per recipient, so each address is tracked on its own.

Errors are classified here; retries and backoff live in the outbox:
    * permanent: authentication refused (535), the recipient or sender refused with a 5xx, the
      message itself refused with a 5xx (spam, too big: sending it again cannot help);
    * temporary: any 4xx (451 greylisting, 421), disconnects, refused or timed-out
      connections, TLS failures, anything else.
Reasons carry the server's own text; the password never appears in one, nor its base64
forms (a server may echo the AUTH command). A whole transaction has a total deadline.

Threading: each e-mail's Message-ID is derived from the alert ids it carries, so a RECOVERED
names its outage's first DOWN in In-Reply-To/References without any storage.
"""

from __future__ import annotations

import base64
import hashlib
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from keepalive.alerts import Alert, AlertKind, alert_id
from keepalive.notifiers.base import Notifier, NotifyError
from keepalive.notifiers.deadline import Deadline
from keepalive.notifiers.smtp import SMTPFactory, connect_smtp
from keepalive.notifiers.text import clip, duration, kind_counts, one_line, utc
from keepalive.scrub import MASK, register_secret, scrub

SECURITY_MODES = ("starttls", "ssl", "none")
MAX_SUBJECT = 150
MAX_REASON = 300


def message_id(alerts: Sequence[Alert], domain: str) -> str:
    """A Message-ID derived from the alerts it carries: the same for every recipient and
    every retry, and computable later (a RECOVERED refers to its DOWN without storage)."""
    if len(alerts) == 1:
        return f"<{alerts[0].id}.alert@{domain}>"
    digest = hashlib.sha256("\x00".join(alert.id for alert in alerts).encode()).hexdigest()[:24]
    return f"<{digest}.digest@{domain}>"


def _down_message_id(alert: Alert, domain: str) -> str:
    """The Message-ID of the e-mail that announced ``alert``'s outage (its first DOWN)."""
    return f"<{alert_id(alert.target, alert.since, AlertKind.DOWN, 0)}.alert@{domain}>"


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
    elif alert.kind is AlertKind.EXPIRING:
        rows.append(("Certificate", clip(one_line(alert.reason), MAX_REASON)))
        rows.append(("Expires", utc(alert.since)))
    else:
        label = "Last failure" if alert.kind is AlertKind.RECOVERED else "Reason"
        rows.append((label, clip(one_line(alert.reason), MAX_REASON)))
        rows.append(("Down since", utc(alert.since)))
        if alert.kind is AlertKind.RECOVERED and alert.downtime is not None:
            rows.append(("Downtime", duration(alert.downtime)))
        rows.append(("Failed checks", str(alert.failed_checks)))
    if alert.remediation:
        rows.append(("Remediation", clip(one_line(alert.remediation), MAX_REASON)))
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
    # Never this host's FQDN: asking DNS for it can hang for seconds.
    domain = one_line(sender.rpartition("@")[2]).replace(" ", "") or "keepalive.invalid"
    message["Message-ID"] = message_id(alerts, domain)
    if len(alerts) == 1 and alerts[0].kind is AlertKind.RECOVERED:
        # Mail clients thread the recovery under the DOWN that announced the outage.
        message["In-Reply-To"] = _down_message_id(alerts[0], domain)
        message["References"] = _down_message_id(alerts[0], domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies
    message.set_content(_body(alerts))
    return message


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class EmailNotifier(Notifier):
    """Sends alerts by SMTP: STARTTLS (default), implicit TLS ("ssl") or plain ("none", a local
    relay only). Certificates are verified against the system's CAs, or only ``ca_file``'s
    (SMTP_CA_FILE, a private mail CA), unless the caller passes its own ``ssl_context``.

    ``timeout`` bounds each read; ``deadline`` the whole transaction, whatever the server does."""

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
        *,
        ca_file: Path | None = None,
        deadline: float = 60.0,
    ) -> None:
        if security not in SECURITY_MODES:
            raise ValueError(f"SMTP security {security!r} is invalid: expected one of {SECURITY_MODES}")
        if not recipients:
            raise ValueError("EmailNotifier needs at least one recipient (EMAIL_RECIPIENT)")
        register_secret(password, *_encoded_forms(username, password))
        self._server = server
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._sender = sender
        self._recipients = tuple(recipients)
        self._timeout = timeout
        self._factory = smtp_factory
        self._deadline = max(deadline, 0.001)
        if ssl_context is not None:
            self._context = ssl_context
        else:
            self._context = ssl.create_default_context(cafile=None if ca_file is None else str(ca_file))

    def recipients(self) -> Sequence[str]:
        """The addresses every alert goes to, each in its own transaction."""
        return self._recipients

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        """Deliver one e-mail to one address; returns its Message-ID. Raises NotifyError.

        ``reply_to`` is not needed: a RECOVERED refers to its DOWN by the DOWN's derived id."""
        message = build_message(alerts, self._sender, recipient)
        deadline = Deadline(self._deadline)
        try:
            with deadline:
                self._transmit(message, recipient, deadline)
        except (smtplib.SMTPException, OSError) as exc:
            # Anything else is a bug, left for the worker's give-up rule.
            if deadline.expired:
                raise self._error(f"no complete answer within {self._deadline:g} s", False) from None
            raise self._classify(exc, recipient) from None
        return str(message["Message-ID"])

    def _classify(self, exc: smtplib.SMTPException | OSError, recipient: str) -> NotifyError:
        """Permanent only when the server refused with a 5xx; anything else is retried."""
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return self._error(f"authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}", True)
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            code, text = exc.recipients.get(recipient, (0, b"refused"))
            return self._error(f"recipient refused: {code} {_text(text)}", code >= 500)
        if isinstance(exc, smtplib.SMTPSenderRefused):
            reason = f"sender refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            return self._error(reason, exc.smtp_code >= 500)
        if isinstance(exc, smtplib.SMTPDataError):
            reason = f"message refused: {exc.smtp_code} {_text(exc.smtp_error)}"
            return self._error(reason, exc.smtp_code >= 500)
        if isinstance(exc, smtplib.SMTPResponseException):
            return self._error(f"SMTP error: {exc.smtp_code} {_text(exc.smtp_error)}", False)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return self._error(f"server disconnected: {exc}", False)
        if isinstance(exc, ssl.SSLError):
            detail = getattr(exc, "verify_message", None) or exc.reason or str(exc)
            return self._error(f"TLS error: {detail}", False)
        if isinstance(exc, TimeoutError):
            return self._error(f"timeout after {self._timeout:g} s", False)
        if isinstance(exc, ConnectionRefusedError):
            return self._error("connection refused", False)
        return self._error(f"{type(exc).__name__}: {exc}", False)

    def _transmit(self, message: EmailMessage, recipient: str, deadline: Deadline) -> None:
        smtp = self._factory(
            self._server,
            self._port,
            security=self._security,
            timeout=self._timeout,
            context=self._context,
            deadline=deadline,
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
        for secret in (self._password, *_encoded_forms(self._username, self._password)):
            if secret:
                reason = reason.replace(secret, MASK)
        # Scrub before clipping: a cut through a secret would leave a fragment scrub() cannot see.
        return NotifyError(clip(scrub(one_line(reason)), MAX_REASON), permanent=permanent)


def _encoded_forms(username: str | None, password: str | None) -> list[str]:
    """How the password travels in AUTH (base64, alone for LOGIN, with the user for PLAIN),
    with and without padding: a server that echoes the command must not leak it either."""
    if not password:
        return []
    user = username or ""
    raw = [password, f"\x00{user}\x00{password}", f"{user}\x00{password}"]
    forms: list[str] = []
    for text in raw:
        encoded = base64.b64encode(text.encode()).decode()
        forms += [encoded, encoded.rstrip("=")]
    return forms
