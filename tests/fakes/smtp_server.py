"""A real SMTP server (aiosmtpd) on loopback that records mail and misbehaves on request.

``FakeSMTP`` accepts mail for anyone and records each message per recipient. Scripting::

    FakeSMTP(credentials=("user", "secret"))   # advertises AUTH (also without TLS, for tests);
                                               # a wrong login gets 535
    fake.tempfail(times=2)                     # 451 at DATA for the next 2 transactions
    fake.refuse("nobody@example.com")          # 550 at RCPT for that address
    fake.fail_auth()                           # 535 for every login, right or wrong
    FakeSMTP(tls="starttls" | "ssl", certfile=..., keyfile=...)   # see make_self_signed(),
                                                                  # make_private_ca()
    FakeSMTP(credentials=..., echo_auth=True)  # a refused login's 535 repeats the AUTH data
                                               # in base64, as some servers do

``EndlessGreeting`` is not an SMTP server at all: it sends ``220-`` continuation lines for
ever, slowly (each read gets a line, so a per-read timeout never trips) or as fast as it can.

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
import base64
import datetime
import email
import email.policy
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import suppress
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
        echo_auth: bool = False,
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
        self._echo_auth = echo_auth
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
        message = None
        if not ok and self._echo_auth and isinstance(auth_data, LoginPassword):
            # What the client sent, base64 as on the wire: PLAIN carries user and password.
            if mechanism == "PLAIN":
                wire = b"\x00" + auth_data.login + b"\x00" + auth_data.password
            else:
                wire = auth_data.password
            message = f"535 5.7.8 Authentication failed for {base64.b64encode(wire).decode()}"
        return AuthResult(
            success=ok, handled=False, message=message, auth_data=auth_data.login if ok else None
        )

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


class EndlessGreeting:
    """A TCP server whose greeting never ends: ``220-`` lines, one every ``interval`` seconds
    (0: as fast as the socket takes them), until the client closes or the server stops."""

    def __init__(self, interval: float, host: str = "127.0.0.1") -> None:
        self.interval = interval
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port = int(self._listener.getsockname()[1])
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def __enter__(self) -> EndlessGreeting:
        thread = threading.Thread(target=self._accept, name="endless-greeting", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        # close() alone does not wake a thread blocked in accept() on Linux; shutdown() does.
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for thread in self._threads:
            thread.join(5.0)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed by __exit__
                return
            self.connections += 1
            thread = threading.Thread(target=self._greet, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _greet(self, client: socket.socket) -> None:
        line = b"220-fake-smtp.test still saying hello " + b"." * 60 + b"\r\n"
        with client, suppress(OSError):  # the client giving up is the point
            while not self._stopping.is_set():
                client.sendall(line)
                if self.interval and self._stopping.wait(self.interval):
                    return


def make_private_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signed for 127.0.0.1/localhost:
    ``(ca.pem, server.pem, server-key.pem)``. What SMTP_CA_FILE is for."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Keep-Alive Test Private CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem, cert_pem, key_pem = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


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
