"""What one run of a target's ``on_down`` did, as shown in events, pages, the API and alerts."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from keepalive.events import iso
from keepalive.scrub import scrub

MAX_COMMAND = 200  # characters of the command line shown anywhere

OUTCOME_EXITED = "exited"
OUTCOME_TIMEOUT = "timeout"
OUTCOME_NOT_STARTED = "not_started"
OUTCOME_INTERRUPTED = "interrupted"  # the monitor stopped while it ran


def command_line(argv: tuple[str, ...] | list[str]) -> str:
    """``argv`` as one shell-quoted line, scrubbed and bounded: how a command is named."""
    text = scrub(shlex.join(argv))
    return text if len(text) <= MAX_COMMAND else text[: MAX_COMMAND - 1] + "…"


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


@dataclass(frozen=True, slots=True)
class RemediationResult:
    target: str
    command: str  # command_line(argv)
    trigger: str  # "monitor", "api", "cli", "telegram:@user", ...
    started_at: float  # epoch seconds
    duration: float  # seconds
    outcome: str  # OUTCOME_*
    exit_code: int | None  # None unless it exited; a negative code: killed by that signal
    error: str  # why it did not start or end normally; "" otherwise
    output: tuple[str, ...]  # its last lines (stdout and stderr together), scrubbed

    @property
    def ok(self) -> bool:
        return self.outcome == OUTCOME_EXITED and self.exit_code == 0

    def summary(self) -> str:
        """One line for alerts and chat answers: restarted by `cmd`: exit 0 in 1.2 s."""
        head = f"restarted by `{self.command}`"
        if self.outcome == OUTCOME_EXITED:
            return f"{head}: exit {self.exit_code} in {seconds(self.duration)}"
        if self.outcome == OUTCOME_TIMEOUT:
            return f"{head}: timed out after {seconds(self.duration)}, its process group was killed"
        if self.outcome == OUTCOME_INTERRUPTED:
            return f"{head}: interrupted after {seconds(self.duration)} ({self.error})"
        return f"{head}: could not start ({self.error})"

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "trigger": self.trigger,
            "started_at": iso(self.started_at),
            "duration_seconds": round(self.duration, 3),
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "error": self.error or None,
            "ok": self.ok,
            "summary": self.summary(),
            "output": list(self.output),
        }
