"""The Alert record: what the state machine raises, the outbox stores and notifiers send."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class AlertKind(StrEnum):
    DOWN = "DOWN"
    RECOVERED = "RECOVERED"
    TEST = "TEST"
    # A TLS certificate's time left fell below a cert_warn_days threshold (SPEC 14): ``since``
    # is the certificate's expiry time, ``reason`` says how long is left.
    EXPIRING = "EXPIRING"


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert about one target. Times are Unix epoch seconds (UTC)."""

    id: str
    kind: AlertKind
    target: str
    url: str
    reason: str  # the last failure reason (for RECOVERED: the reason of the outage)
    since: float  # when the outage began: the first failed check
    at: float  # when the alert was raised
    failed_checks: int  # failed checks in this outage so far
    downtime: float | None  # seconds down, RECOVERED only
    host: str  # the monitor's host name
    # What the target's on_down did since its previous alert (SPEC 15), e.g. "restarted by
    # `systemctl restart tq-server`: exit 0 in 1.2 s"; "" when nothing ran.
    remediation: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Alert:
        data: dict[str, Any] = json.loads(text)
        data["kind"] = AlertKind(data["kind"])
        return cls(**data)


def alert_id(target: str, since: float, kind: AlertKind, sequence: int) -> str:
    """A deterministic id: the same alert raised twice (say, after a crash) is stored once.

    ``sequence`` numbers the DOWN alerts of one outage (repeats); it is 0 for RECOVERED.
    """
    key = f"{target}\x00{since:.6f}\x00{kind}\x00{sequence}"
    return hashlib.sha256(key.encode()).hexdigest()[:24]
