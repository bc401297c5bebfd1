"""What each Telegram command does (SPEC 16): a command line in, an HTML answer out.

Runs on the event loop (``Commands.answer`` is a coroutine the poller's thread hands over), so
it reads the monitor's snapshot and starts remediation where they live; nothing here blocks
the loop: a check is the checker's own bounded coroutine, a silence's fsync goes to a thread.

Every dynamic string is HTML-escaped like the alerts (keepalive.notifiers.telegram), and an
answer never passes Telegram's 4096 characters. Each command is one ``telegram_command`` event
naming who asked, what, and how it ended.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from keepalive.actions.remediation import Remediator
from keepalive.actions.result import RemediationResult, command_line
from keepalive.engine.announcer import Reporter
from keepalive.engine.snapshot import MonitorSnapshot
from keepalive.policy.silences import SilenceBook, SilenceError, read_request
from keepalive.probe.checker import CheckResult
from keepalive.scrub import scrub
from keepalive.state import Status
from keepalive.targets import Target

MAX_ANSWER = 3900  # below Telegram's 4096, with room for the "and N more" line
MAX_SHOWN = 200  # characters of a reason, name or comment in an answer
MAX_COMMAND_EVENT = 200

# (command, arguments, what it does): the order /help and setMyCommands show.
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("status", "", "counts, and every target not up with its reason"),
    ("check", "NAME", "check a target now and say the result"),
    ("silence", "GLOB DURATION [comment]", "hold alerts of matching targets, e.g. db-* 2h disk swap"),
    ("silences", "", "the silences in force"),
    ("unsilence", "ID", "end a silence"),
    ("restart", "NAME", "run the target's on_down command"),
    ("help", "", "these commands"),
)
ICONS = {Status.UP: "✅", Status.DOWN: "🔴", Status.FAILING: "🟠", Status.UNKNOWN: "⚪"}

log = logging.getLogger("keepalive.telegram_commands")


def esc(text: object, limit: int = MAX_SHOWN) -> str:
    """One line of ``text``, at most ``limit`` characters, escaped for Telegram's HTML mode."""
    flat = " ".join(scrub(str(text)).split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return html.escape(flat, quote=False)


def fit(lines: list[str], limit: int = MAX_ANSWER) -> str:
    """Lines joined, cut between whole lines (never inside a tag or entity) to ``limit``."""
    out: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        if used + len(line) + 1 > limit:
            out.append(f"… and {len(lines) - index} more")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def utc(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%MZ")


def parse(text: str) -> tuple[str, str]:
    """``/Check@my_bot  web 1`` -> (``check``, ``web 1``); ("", "") for what is not a command."""
    stripped = text.strip()
    if not stripped.startswith("/"):
        return "", ""
    parts = stripped.split(None, 1)
    rest = parts[1] if len(parts) > 1 else ""
    name = parts[0][1:].split("@", 1)[0].lower()
    return name, " ".join(rest.split())


def help_text() -> str:
    lines = ["<b>Commands</b>"]
    for name, args, what in COMMANDS:
        usage = f"/{name} {html.escape(args)}".rstrip()
        lines.append(f"{usage} - {html.escape(what)}")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Asker:
    """Who sent a command: shown in events and as a silence's ``created_by``."""

    user: str  # "@name" or the numeric user id
    chat: str


Later = Callable[[str], None]  # sends a further answer to the same chat (thread-safe)


class Commands:
    """The commands, each answering in HTML. ``later`` is how /restart answers when done."""

    def __init__(
        self,
        reporter: Reporter,
        snapshot: Callable[[], MonitorSnapshot],
        find: Callable[[str], Target | None],
        check: Callable[[Target], Awaitable[CheckResult]],
        remediator: Remediator,
        book: SilenceBook | None,
    ) -> None:
        self.reporter = reporter
        self._snapshot = snapshot
        self._find = find
        self._check = check
        self.remediator = remediator
        self.book = book

    async def answer(self, text: str, asker: Asker, later: Later) -> str:
        """The answer to one command line from an allowed chat."""
        command, args = parse(text)
        handler = getattr(self, f"_cmd_{command}", None) if command else None
        if handler is None:
            result = "unknown command"
            reply = (
                f"Unknown command {esc(text.split()[0] if text.split() else text, 40)}. "
                "Send /help for the list."
            )
        else:
            try:
                result, reply = await handler(args, asker, later)
            except Exception as exc:  # one bad command must not end the poller
                log.exception("telegram command %r failed", command)
                result, reply = (
                    f"failed: {type(exc).__name__}",
                    "Sorry, that failed inside the monitor (see its log).",
                )
        self.reporter.report(
            "telegram_command",
            "telegram command",
            who=asker.user,
            chat=asker.chat,
            command=scrub(" ".join(text.split()))[:MAX_COMMAND_EVENT],
            result=result,
        )
        return reply

    # ------------------------------------------------------------------ the commands

    async def _cmd_help(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        return "ok", help_text()

    async def _cmd_start(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        return "ok", help_text()  # what Telegram sends when a chat opens the bot

    async def _cmd_status(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        snap = self._snapshot()
        total = len(snap.targets)
        head = (
            f"📊 <b>{total} target{'s' if total != 1 else ''}</b> on {esc(snap.host, 80)}: "
            f"{snap.targets_up} up, {snap.targets_down} down, {snap.targets_failing} failing, "
            f"{snap.targets_unknown} unknown"
        )
        lines = [head]
        if not snap.healthy:
            lines.append("⚠️ monitor: " + esc("; ".join(snap.problems), 400))
        order = {Status.DOWN: 0, Status.FAILING: 1, Status.UNKNOWN: 2}
        trouble = sorted(
            (t for t in snap.targets if t.state is not Status.UP), key=lambda t: (order[t.state], t.name)
        )
        for t in trouble:
            line = f"{ICONS[t.state]} <b>{esc(t.name, 80)}</b> {t.state.value}"
            if t.since is not None and t.state is not Status.UNKNOWN:
                line += f" since {utc(t.since)}"
            if t.last_reason:
                line += f": {esc(t.last_reason)}"
            held = getattr(t, "silenced_by", None)
            if held:
                line += f" (🔕 {esc(held, 120)})"
            lines.append(line)
        if not trouble:
            lines.append("Every target is up.")
        return "ok", fit(lines)

    async def _cmd_check(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        if not args:
            return "usage", "Usage: /check NAME"
        target = self._find(args)
        if target is None:
            return (
                "unknown target",
                f"No target named <b>{esc(args, 80)}</b>. /status lists the ones in trouble.",
            )
        name = esc(target.name, 80)
        if target.kind in ("log", "push"):
            # Their checks consume what arrived since the last one (log lines, pings): a check on
            # demand would steal it from the scheduled one, so the last verdict is the answer.
            view = next((t for t in self._snapshot().targets if t.name == target.name), None)
            if view is None or view.last_check is None:
                return "not checked yet", f"⚪ <b>{name}</b> has not been checked yet."
            when = utc(view.last_check)
            if view.state is Status.UP:
                return "passed", f"✅ <b>{name}</b> passed its last check ({when})."
            reason = esc(view.last_reason or view.state.value)
            return "failed", f"{ICONS[view.state]} <b>{name}</b> failed its last check ({when}): {reason}"
        result = await self._check(target)
        if result.ok:
            latency = f" in {result.latency_ms:.0f} ms" if result.latency_ms is not None else ""
            return "passed", f"✅ <b>{name}</b> passes{latency}."
        return "failed", f"🔴 <b>{name}</b> fails: {esc(result.reason or 'failed')}"

    async def _cmd_restart(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        if not args:
            return "usage", "Usage: /restart NAME"
        try:
            task = self.remediator.run_now(args, f"telegram:{asker.user}")
        except LookupError:
            return "unknown target", f"No target named <b>{esc(args, 80)}</b>."
        except (ValueError, RuntimeError) as exc:
            return "refused", f"Not started: {esc(exc)}."
        target = self.remediator.find(args)
        assert target is not None

        def done(finished: asyncio.Task[RemediationResult]) -> None:
            if finished.cancelled():
                return
            later(remediation_text(finished.result()))

        task.add_done_callback(done)
        return (
            "started",
            f"🔧 <b>{esc(target.name, 80)}</b>: running <code>{esc(command_line(target.on_down))}</code>…",
        )

    async def _cmd_silence(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        if self.book is None:
            return "unavailable", "Silences are not available in this monitor."
        parts = args.split(" ", 2)
        if len(parts) < 2:
            return "usage", "Usage: /silence GLOB DURATION [comment], e.g. /silence db-* 2h disk swap"
        body: dict[str, Any] = {"targets": parts[0], "duration": parts[1]}
        if len(parts) == 3:
            body["comment"] = parts[2]
        try:
            request = read_request(
                body, self.book.clock(), self.book.max_silence, who=f"telegram:{asker.user}"
            )
            silence = await asyncio.to_thread(self.book.add, request)
        except SilenceError as exc:
            return "refused", f"Not silenced: {esc(exc, 400)}"
        except OSError as exc:
            return "failed", f"The silence could not be stored: {esc(exc.strerror or exc)}"
        self.reporter.report("silence_created", "silence created", **silence.event_fields())
        names = [t.name for t in self._snapshot().targets if silence.covers(t.name)]
        matched = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        return "ok", (
            f"🔕 Silenced <b>{esc(', '.join(silence.targets), 120)}</b> until {utc(silence.ends_at)} "
            f"(id <code>{esc(silence.short_id)}</code>).\n"
            + (f"Matches {len(names)}: {esc(matched, 600)}" if names else "It matches no target now.")
        )

    async def _cmd_silences(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        if self.book is None:
            return "unavailable", "Silences are not available in this monitor."
        now = self.book.clock()
        active = [s for s in self.book.all() if s.ends_at > now]
        if not active:
            return "ok", "No silence in force."
        lines = [f"🔕 <b>{len(active)} silence{'s' if len(active) != 1 else ''}</b>"]
        for s in active:
            comment = f": {esc(s.comment, 120)}" if s.comment else ""
            lines.append(
                f"<code>{esc(s.short_id)}</code> {esc(', '.join(s.targets), 120)} until {utc(s.ends_at)} "
                f"by {esc(s.created_by, 60)}{comment}"
            )
        return "ok", fit(lines)

    async def _cmd_unsilence(self, args: str, asker: Asker, later: Later) -> tuple[str, str]:
        if self.book is None:
            return "unavailable", "Silences are not available in this monitor."
        if not args or " " in args:
            return "usage", "Usage: /unsilence ID (see /silences)"
        try:
            removed = await asyncio.to_thread(self.book.remove, args)
        except OSError as exc:
            return "failed", f"The silence could not be removed: {esc(exc.strerror or exc)}"
        if removed is None:
            return "unknown silence", f"No silence <code>{esc(args, 40)}</code>. /silences lists them."
        self.reporter.report(
            "silence_removed", "silence removed", id=removed.id, targets=list(removed.targets), by=asker.user
        )
        return (
            "ok",
            f"🔔 Silence <code>{esc(removed.short_id)}</code> "
            f"({esc(', '.join(removed.targets), 120)}) ended.",
        )


def remediation_text(result: RemediationResult) -> str:
    """The answer when a /restart finishes: the summary and its last output lines."""
    icon = "✅" if result.ok else "❌"
    lines = [f"{icon} <b>{esc(result.target, 80)}</b>: {esc(result.summary(), 400)}"]
    if result.output:
        shown = "\n".join(html.escape(line, quote=False) for line in result.output[-8:])
        lines.append(f"<pre>{shown}</pre>")
    return "\n".join(lines)
