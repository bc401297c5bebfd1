"""A real SMTP server (aiosmtpd) on loopback that records mail and misbehaves on request.

``FakeSMTP`` accepts mail for anyone and records each message per recipient. Scripting::

    FakeSMTP(credentials=("user", "secret"))   # advertises AUTH (also without TLS, for tests);
                                               # a wrong login gets 535
    fake.tempfail(times=2)                     # 451 at DATA for the next 2 transactions
    fake.refuse("nobody@example.com")          # 550 at RCPT for that address
    fake.fail_auth()                           # 535 for every login, right or wrong
    FakeSMTP(tls="starttls" | "ssl", certfile=..., keyfile=...)   # see make_self_signed()

Counters: ``transactions`` (DATA commands reached), ``auth_attempts`` (each AUTH command: one
smtplib ``login()`` tries every mechanism offered, so a refused login counts twice) and
``auth_sessions`` (connections that tried to log in).

Standalone::

    python -m tests.fakes.smtp_server --port 2525 [--record mail.jsonl] [--auth user:pass] \
        [--tempfail N] [--refuse ADDRESS] [--auth-fail]

prints ``smtp_server: listening on 127.0.0.1:2525`` and runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.fakes.standalone import serve_until_signalled

TEMPFAIL_REPLY = "451 4.3.0 Temporary local problem, try again later"
REFUSED_REPLY = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"


@dataclass(frozen=True)
class Received:
    """One message as the server accepted it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    message: EmailMessage
    time: float
    login: str | None  # who authenticated, if anyone


class _Controller(Controller):
    """aiosmtpd's Controller, but able to listen on port 0 (a free port)."""

    def _trigger_server(self) -> None:
        if self.port == 0 and self.server is not None:
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Handler:
    def __init__(self, owner: FakeSMTP) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.owner._refused:
            return REFUSED_REPLY.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.owner._data(session, envelope)


class FakeSMTP:
    """See the module doc."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: tuple[str, str] | None = None,
        tls: str | None = None,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        record: Path | None = None,
    ) -> None:
        if tls not in (None, "starttls", "ssl"):
            raise ValueError("tls must be None, 'starttls' or 'ssl'")
        if tls and not (certfile and keyfile):
            raise ValueError("tls needs certfile and keyfile (see make_self_signed)")
        self.host = host
        self._port = port
        self.credentials = credentials
        self.tls = tls
        self._certfile = certfile
        self._keyfile = keyfile
        self._record = record
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._received: list[Received] = []
        self._refused: set[str] = set()
        self._tempfail_left = 0
        self._auth_fails = False
        self.transactions = 0
        self.auth_attempts = 0
        self._auth_sessions = 0
        self._controller: _Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeSMTP:
        if self._controller is not None:
            raise RuntimeError("FakeSMTP is already started")
        # AUTH is always on offer (even without TLS: this is a test server); clients that do
        # not log in are served all the same.
        kwargs: dict[str, Any] = {
            "server_hostname": "fake-smtp.test",
            "ready_timeout": 10.0,
            "authenticator": self._authenticate,
            "auth_require_tls": False,
        }
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self._certfile), str(self._keyfile))
            if self.tls == "ssl":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        controller = _Controller(_Handler(self), hostname=self.host, port=self._port, **kwargs)
        controller.start()
        # Keep the port, so a restarted server comes back where the client expects it.
        self._port = int(controller.port)
        self._controller = controller
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    # -- scripting ---------------------------------------------------------------------------

    def tempfail(self, times: int = 1) -> None:
        """Answer 451 at DATA for the next ``times`` transactions."""
        with self._lock:
            self._tempfail_left = times

    def refuse(self, address: str) -> None:
        """Refuse ``address`` at RCPT with 550, for good."""
        with self._lock:
            self._refused.add(address.lower())

    def fail_auth(self) -> None:
        """Refuse every login with 535, right or wrong."""
        with self._lock:
            self._auth_fails = True

    # -- what happened -----------------------------------------------------------------------

    @property
    def auth_sessions(self) -> int:
        with self._lock:
            return self._auth_sessions

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def messages_to(self, address: str) -> list[EmailMessage]:
        """Messages delivered to ``address``, oldest first."""
        return [r.message for r in self.received if address.lower() in (a.lower() for a in r.rcpt_tos)]

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` messages were accepted; False at the deadline."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._received) >= count, timeout)

    def wait_for_transactions(self, count: int, timeout: float = 10.0) -> bool:
        """Block until ``count`` transactions reached DATA; False at the deadline."""
        with self._changed:
            return self._changed.wait_for(lambda: self.transactions >= count, timeout)

    def wait_for_auth_attempts(self, count: int, timeout: float = 10.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.auth_attempts >= count, timeout)

    # -- used by the handler -----------------------------------------------------------------

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        with self._changed:
            self.auth_attempts += 1
            if not getattr(session, "fake_auth_counted", False):
                session.fake_auth_counted = True
                self._auth_sessions += 1
            self._changed.notify_all()
            fails = self._auth_fails
        ok = (
            not fails
            and isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)

    def _data(self, session: Any, envelope: Any) -> str:
        with self._changed:
            self.transactions += 1
            self._changed.notify_all()
            if self._tempfail_left > 0:
                self._tempfail_left -= 1
                return TEMPFAIL_REPLY
            raw = envelope.content if isinstance(envelope.content, bytes) else envelope.content.encode()
            parsed = email.message_from_bytes(raw, policy=email.policy.default)
            login = session.auth_data.decode() if isinstance(session.auth_data, bytes) else None
            item = Received(
                str(envelope.mail_from), tuple(envelope.rcpt_tos), raw, parsed, time.time(), login
            )
            self._received.append(item)
            if self._record is not None:
                with self._record.open("a", encoding="utf-8") as handle:
                    row = {
                        "mail_from": item.mail_from,
                        "rcpt_tos": list(item.rcpt_tos),
                        "subject": str(parsed["Subject"]),
                        "time": item.time,
                    }
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            self._changed.notify_all()
        return "250 2.0.0 Message accepted for delivery"


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost made with the ``openssl`` CLI.

    Raises FileNotFoundError when openssl is not installed (tests skip on that)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("openssl")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A recording SMTP server for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", type=Path, help="append a line per accepted message to this JSONL file")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="advertise AUTH and accept this login")
    parser.add_argument("--auth-fail", action="store_true", help="refuse every login with 535")
    parser.add_argument(
        "--tempfail", type=int, default=0, metavar="N", help="451 for the first N transactions"
    )
    parser.add_argument("--refuse", action="append", default=[], metavar="ADDRESS", help="550 at RCPT")
    args = parser.parse_args(argv)
    credentials = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        credentials = (user, password)
    fake = FakeSMTP(args.host, args.port, credentials=credentials, record=args.record)
    if args.auth_fail:
        fake.fail_auth()
    fake.tempfail(args.tempfail)
    for address in args.refuse:
        fake.refuse(address)
    return serve_until_signalled(fake, lambda: f"smtp_server: listening on {fake.host}:{fake.port}")


if __name__ == "__main__":
    sys.exit(main())
