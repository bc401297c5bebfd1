"""EXPIRING alerts for TLS certificates (SPEC section 14): pure rules, and their memory.

``cert_warn_days = [14, 3]``: when a certificate's time left drops below a threshold, one
EXPIRING alert is raised for it. What users of other monitors complained about is ruled out
here: several thresholds crossed at once (a first look at a certificate with 2 days left)
give ONE alert naming the lowest; a threshold announced is never announced again for the
same certificate (no daily reminder); a renewed certificate (another fingerprint) starts
again; ``[]`` turns it off. What was announced is kept in ``MONITOR_STATE_DIR/
cert_warnings.json``, so a restart does not re-send (and the alert id, derived from the
target, the expiry time and the threshold, is stored once in the outbox anyway).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DAY = 86400.0
FILE_NAME = "cert_warnings.json"


@dataclass(frozen=True, slots=True)
class Warned:
    """The lowest threshold (days) announced for the certificate with ``fingerprint``."""

    fingerprint: str
    days: int


def expiry_step(
    warned: Warned | None, fingerprint: str, expires_at: float, now: float, thresholds: tuple[int, ...]
) -> tuple[Warned | None, int | None]:
    """(what is announced after this look, the threshold to announce now or None)."""
    if warned is not None and warned.fingerprint != fingerprint:
        warned = None  # renewed: every threshold applies again
    left = (expires_at - now) / DAY
    crossed = [days for days in thresholds if left < days]
    if not crossed or left <= 0:  # expired: the check itself fails (TLS error: certificate expired)
        return warned, None
    lowest = min(crossed)
    if warned is not None and warned.days <= lowest:
        return warned, None
    return Warned(fingerprint, lowest), lowest


def time_left(seconds: float) -> str:
    """``9 days``, ``1 day``, ``5 h``, ``40 min``: never "0 days" for a certificate that has hours."""
    if seconds >= 2 * DAY:
        return f"{int(seconds // DAY)} days"
    if seconds >= DAY:
        return "1 day"
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h"
    return f"{max(0, int(seconds // 60))} min"


class CertWarnings:
    """What was announced per target, loaded at start and saved when it changes."""

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / FILE_NAME if state_dir is not None else None
        self.warned: dict[str, Warned] = {}

    def load(self) -> list[str]:
        """Read the file; returns problems (one line each). A bad file is ignored: at worst an
        EXPIRING is sent once more."""
        if self.path is None:
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            return [f"{self.path}: {exc}"]
        if not isinstance(data, dict):
            return [f"{self.path}: not a JSON object"]
        for name, item in data.items():
            if (
                isinstance(item, dict)
                and isinstance(item.get("fingerprint"), str)
                and isinstance(item.get("days"), int)
            ):
                self.warned[name] = Warned(item["fingerprint"], item["days"])
        return []

    def step(
        self, name: str, fingerprint: str, expires_at: float, now: float, thresholds: tuple[int, ...]
    ) -> tuple[int | None, bool]:
        """(threshold to announce or None, whether the memory changed and should be saved)."""
        before = self.warned.get(name)
        after, threshold = expiry_step(before, fingerprint, expires_at, now, thresholds)
        if after == before:
            return threshold, False
        if after is None:
            self.warned.pop(name, None)
        else:
            self.warned[name] = after
        return threshold, True

    def forget(self, name: str) -> bool:
        """Forget what was announced for ``name`` (its next look decides afresh); True when
        there was something to forget (the memory changed and should be saved)."""
        return self.warned.pop(name, None) is not None

    def document(self) -> dict[str, Any]:
        return {name: {"fingerprint": w.fingerprint, "days": w.days} for name, w in self.warned.items()}

    def save(self, document: dict[str, Any]) -> None:
        """Write ``document`` (from ``document()``) atomically; run it off the event loop."""
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(document, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)
