"""What a check of one kind learned besides pass/fail, shown on the page and in /api/status.

Kept apart from the verdict: a push target's last ping, a log target's file and last match,
an https target's certificate. ``None`` fields were not learned by this kind of check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Detail:
    last_ping: float | None = None  # push: epoch seconds of the last ping (success or /fail)
    log_file: str | None = None  # log: the file read
    last_match: str | None = None  # log: the last matching line (scrubbed, printable, <= 200)
    last_match_at: float | None = None  # log: epoch seconds the check found it
    log_note: str | None = None  # log: what the last read skipped (a burst over 16 MiB)
    cert_expires_at: float | None = None  # https: the leaf certificate's notAfter, epoch seconds
    cert_fingerprint: str | None = None  # https: SHA-256 of the leaf certificate (a renewal changes it)
