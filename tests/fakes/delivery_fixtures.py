"""Test support for alert delivery (fixtures registered in tests/conftest.py).

Fixtures: ``fake_telegram`` (a started FakeTelegram), ``fake_smtp`` (a started FakeSMTP),
``self_signed_cert`` (cert and key for 127.0.0.1), ``private_ca`` (a CA and a certificate it
signed), ``harness`` (a DeliveryHarness).
Helpers: ``make_alert()``, ``wait_until()``, ``free_port()``, ``DeliveryHarness``, ``Scripted``
(an in-memory channel that follows a script of outcomes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from keepalive.alerts import Alert, AlertKind, alert_id
from keepalive.delivery.outbox import DeliveryWorker, Outbox
from keepalive.events import EventLog
from keepalive.notifiers.base import Notifier
from keepalive.notifiers.factory import routes
from tests.fakes.smtp_server import FakeSMTP, make_private_ca, make_self_signed
from tests.fakes.telegram_api import FakeTelegram
from tests.monitor_proc import free_port, wait_until

__all__ = ["DeliveryHarness", "Scripted", "free_port", "make_alert", "wait_until"]


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    """A started ``FakeTelegram`` on 127.0.0.1 and a free port; use ``.url`` and ``.token``."""
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def fake_smtp() -> Iterator[FakeSMTP]:
    """A started plain ``FakeSMTP`` that offers AUTH as ``user`` / ``smtp-secret-pw``."""
    with FakeSMTP(credentials=("user", "smtp-secret-pw")) as fake:
        yield fake


@pytest.fixture(scope="session")
def self_signed_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for 127.0.0.1; skips the test when openssl is missing."""
    try:
        return make_self_signed(tmp_path_factory.mktemp("tls"))
    except FileNotFoundError:
        pytest.skip("the openssl command is not installed")


@pytest.fixture(scope="session")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(ca.pem, server.pem, server-key.pem): a private CA and a 127.0.0.1 certificate it signed."""
    return make_private_ca(tmp_path_factory.mktemp("private-ca"))


def make_alert(
    target: str = "api",
    kind: AlertKind = AlertKind.DOWN,
    reason: str = "connection refused",
    *,
    url: str | None = None,
    since: float = 1_763_000_000.0,
    sequence: int = 0,
    failed_checks: int = 2,
    downtime: float | None = None,
    host: str = "monitor-host",
) -> Alert:
    """An Alert with readable defaults and a deterministic id (vary ``sequence`` for repeats)."""
    if kind is AlertKind.RECOVERED and downtime is None:
        downtime = 303.0
    return Alert(
        id=alert_id(target, since, kind, sequence),
        kind=kind,
        target=target,
        url=url or f"http://127.0.0.1:5004/{target}/health",
        reason=reason,
        since=since,
        at=since + 60.0 + sequence,
        failed_checks=failed_checks,
        downtime=downtime,
        host=host,
    )


class Scripted(Notifier):
    """An in-memory channel: each send takes the next outcome from its recipient's script
    (an exception to raise, or None for success) and is recorded."""

    def __init__(
        self,
        channel: str = "fake",
        recipients: Sequence[str] = ("a",),
        script: dict[str, list[Exception | None]] | None = None,
    ) -> None:
        self.channel = channel
        self._recipients = tuple(recipients)
        self._script = {recipient: list(steps) for recipient, steps in (script or {}).items()}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, list[str], float]] = []
        self.replies: list[str | None] = []
        # The monotonic clock's reading at each call, when a test drives that clock.
        self.clock: Callable[[], float] = time.time
        self.clock_at_call: list[float] = []

    def recipients(self) -> Sequence[str]:
        return self._recipients

    def send(self, recipient: str, alerts: Sequence[Alert], reply_to: str | None = None) -> str | None:
        with self._lock:
            self.calls.append((recipient, [alert.id for alert in alerts], time.time()))
            self.replies.append(reply_to)
            self.clock_at_call.append(self.clock())
            steps = self._script.get(recipient) or []
            outcome = steps.pop(0) if steps else None
            number = len(self.calls)
        if outcome is not None:
            raise outcome
        return f"m{number}"

    def sent_to(self, recipient: str) -> list[list[str]]:
        with self._lock:
            return [ids for who, ids, _ in self.calls if who == recipient]


class DeliveryHarness:
    """An outbox in ``state_dir`` and a worker with a fast backoff (0.05 s doubling to 0.4 s):
    ``run()`` stores alerts for every recipient of the given channels, waits until each
    delivery is sent or failed, and then stops the worker, so every outcome's event and
    channel figures are in place (a sending thread records the outcome in the outbox first
    and reports it just after) and no idle worker is left to pick up a later run's alerts."""

    def __init__(self, state_dir: Path) -> None:
        self.events = EventLog(None)
        self.outbox = Outbox(state_dir)
        self._workers: list[DeliveryWorker] = []

    def run(
        self,
        notifiers: Sequence[Notifier],
        alerts: Sequence[Alert],
        digest_after: int = 3,
        timeout: float = 15.0,
    ) -> DeliveryWorker:
        worker = DeliveryWorker(
            self.outbox, notifiers, self.events, digest_after, base_delay=0.05, max_delay=0.4
        )
        worker.start()
        self._workers.append(worker)
        self.outbox.put(alerts, routes(notifiers))
        worker.wake()
        wait_until(lambda: self.outbox.depth() == 0, timeout, what="every delivery sent or failed")
        worker.stop(timeout)  # joins its sending threads: each has reported its outcome
        return worker

    def named(self, event: str) -> list[dict[str, Any]]:
        """The events called ``event``, oldest first."""
        return [e for e in self.events.recent if e["event"] == event]

    def database_bytes(self) -> bytes:
        """The outbox file and its WAL, raw: what a leaked secret would be found in."""
        return b"".join(p.read_bytes() for p in sorted(self.outbox.path.parent.glob("outbox.sqlite3*")))

    def close(self) -> None:
        for worker in self._workers:
            worker.stop(5.0)
        self.outbox.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[DeliveryHarness]:
    """A ``DeliveryHarness`` in a fresh state directory."""
    box = DeliveryHarness(tmp_path / "state")
    yield box
    box.close()
