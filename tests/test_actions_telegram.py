"""Telegram commands (SPEC 16) through the real monitor in process and the fake Bot API driven by
scripted updates: allowed and foreign chats, a restart between two updates, topics, silences,
/restart, bad commands; and the poller alone for 409 Conflict and 429 on answers."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from keepalive.actions.commands import COMMANDS, parse
from keepalive.actions.telegram_commands import BotApi, CommandPoller, Incoming, OffsetStore
from keepalive.engine.announcer import Reporter
from keepalive.engine.app import MonitorApp
from keepalive.events import EventLog
from keepalive.notifiers.log import LogNotifier
from keepalive.notifiers.telegram import Pacer
from keepalive.web.metrics import build_registry
from tests.fakes.engine import ScriptedChecker, targets_settings, toml_targets
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram, Message

OPS = "5551234"  # the allowed private chat
GROUP = "-1009876543210"  # an allowed forum supergroup, alerts to topic 7
STRANGER = "777000111"


def events(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def named(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    return [e for e in events(tmp_path) if e["event"] == name]


def wait_for(condition: Callable[[], object], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        time.sleep(0.02)


class Running:
    """A MonitorApp running on a thread of its own, answering commands; ``stop()`` ends it."""

    def __init__(
        self,
        tmp_path: Path,
        fake: FakeTelegram,
        on_down: list[str] | None = None,
        extra: tuple[dict[str, Any], ...] = (),
    ) -> None:
        entries: list[dict[str, Any]] = [
            {"name": "Web-1", "url": "http://web-1.example/health", "interval": 0.2},
            {"name": "db <main>", "url": "http://db.example/health", "interval": 0.2},
            *extra,
        ]
        if on_down is not None:
            entries[0]["on_down"] = on_down
        tmp_path.mkdir(exist_ok=True)
        self.checker = ScriptedChecker(time.time)  # real time: silences compare with now
        self.checker.verdicts["db <main>"] = "HTTP 503 <Service Unavailable> & more"
        settings = targets_settings(
            tmp_path,
            toml_targets(*entries),
            MONITOR_HTTP_HOST="127.0.0.1",
            MONITOR_HTTP_PORT="0",
            TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
            TELEGRAM_CHAT_ID=f"{OPS},{GROUP}:7",
            TELEGRAM_API_URL=fake.url,
            TELEGRAM_COMMANDS="true",
            FAILURE_THRESHOLD="1",
        )
        self.app = MonitorApp.build(
            settings, notifier_factory=lambda s: [LogNotifier()], checker=self.checker
        )
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._started.wait(20), "the monitor did not start"

    def _run(self) -> None:
        async def go() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.app.run(self._stop, self._started.set)

        try:
            asyncio.run(go())
        finally:
            self.app.close()

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive()


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        yield server


def answers(fake: FakeTelegram, chat: str, count: int) -> list[Message]:
    wait_for(lambda: len(fake.messages_to(chat)) >= count)
    return fake.messages_to(chat)


def test_an_allowed_chat_gets_answers_and_a_foreign_chat_gets_nothing_but_is_counted(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    running = Running(tmp_path, fake)
    try:
        wait_for(lambda: running.app.monitor.runtimes["db <main>"].observed.checks_failed >= 1)
        wait_for(lambda: fake.commands_set)
        fake.push_update(STRANGER, "/status")
        fake.push_update(STRANGER, "/restart Web-1")
        fake.push_update(OPS, "/STATUS@fake_bot")
        (status,) = answers(fake, OPS, 1)
        fake.push_update(OPS, "/check WEB-1")
        fake.push_update(OPS, "/check nope")
        fake.push_update(OPS, "/frobnicate now")
        fake.push_update(OPS, "/check")
        fake.push_update(OPS, "just chatting")
        replies = answers(fake, OPS, 5)
        assert running.app.keep is not None
        assert running.app.keep.refused_total() == 2
        wait_for(lambda: running.app.monitor.snapshot().telegram_commands_refused_total == 2)
        metrics = generate_latest(build_registry(running.app.monitor.snapshot())).decode()
    finally:
        running.stop()
    assert fake.messages_to(STRANGER) == []
    assert "keepalive_telegram_commands_refused_total 2.0" in metrics.splitlines()
    assert status.rendered.startswith("📊 2 targets on ")
    assert "1 up, 1 down, 0 failing, 0 unknown" in status.rendered
    assert "🔴 db <main> down since " in status.rendered
    assert status.rendered.endswith(": HTTP 503 <Service Unavailable> & more")
    assert "db &lt;main&gt;" in status.text  # escaped like the alerts
    assert [m.rendered for m in replies[1:5]] == [
        "✅ Web-1 passes in 5 ms.",
        "No target named nope. /status lists the ones in trouble.",
        "Unknown command /frobnicate. Send /help for the list.",
        "Usage: /check NAME",
    ]
    assert len(fake.messages_to(OPS)) == 5  # nothing for "just chatting"
    assert [c["command"] for c in fake.commands_set[0]] == [name for name, _, _ in COMMANDS]
    refused = named(tmp_path, "telegram_command_refused")
    assert [r["chat"] for r in refused] == [STRANGER]  # named once, counted twice
    commands = named(tmp_path, "telegram_command")
    assert [(c["who"], c["chat"], c["command"], c["result"]) for c in commands] == [
        ("@ops", OPS, "/STATUS@fake_bot", "ok"),
        ("@ops", OPS, "/check WEB-1", "passed"),
        ("@ops", OPS, "/check nope", "unknown target"),
        ("@ops", OPS, "/frobnicate now", "unknown command"),
        ("@ops", OPS, "/check", "usage"),
    ]


def test_a_restart_between_two_updates_runs_neither_twice(tmp_path: Path, fake: FakeTelegram) -> None:
    marks = tmp_path / "marks"
    on_down = [sys.executable, "-c", f"open({str(marks)!r}, 'a').write('ran\\n')"]
    running = Running(tmp_path / "one", fake, on_down)
    try:
        fake.push_update(OPS, "/restart web-1")
        wait_for(lambda: marks.exists() and marks.read_text().count("ran") == 1)
        answers(fake, OPS, 2)  # "running ..." and the result
    finally:
        running.stop()
    offset_file = tmp_path / "one" / "state" / "telegram_offset.json"
    assert json.loads(offset_file.read_text()) == {"offset": 2}
    # Whatever the fake still holds (an offset is confirmed only by the next request), the saved
    # offset skips it: the second monitor runs only the new update.
    fake.push_update(OPS, "/restart web-1")
    running = Running(tmp_path / "one", fake, on_down)
    try:
        wait_for(lambda: marks.read_text().count("ran") == 2)
        answers(fake, OPS, 4)
        wait_for(lambda: len(fake.update_requests) >= 4)
    finally:
        running.stop()
    assert marks.read_text() == "ran\nran\n"
    started, finished = answers(fake, OPS, 2)[:2]
    assert started.rendered.startswith(f"🔧 Web-1: running {sys.executable} -c ")
    assert finished.rendered.startswith("✅ Web-1: restarted by `") and " exit 0 in " in finished.rendered
    restarts = [e for e in events(tmp_path / "one") if e["event"] == "remediation_finished"]
    assert [(r["trigger"], r["exit_code"]) for r in restarts] == [("telegram:@ops", 0), ("telegram:@ops", 0)]
    assert json.loads(offset_file.read_text()) == {"offset": 3}


def test_a_command_in_a_forum_topic_is_answered_in_that_topic(tmp_path: Path, fake: FakeTelegram) -> None:
    running = Running(tmp_path, fake)
    try:
        fake.push_update(GROUP, "/help", topic=7)
        fake.push_update(GROUP, "/help", topic=9)
        first, second = answers(fake, GROUP, 2)
    finally:
        running.stop()
    assert (first.payload["message_thread_id"], second.payload["message_thread_id"]) == (7, 9)
    assert first.rendered.splitlines()[0] == "Commands"
    assert "/silence GLOB DURATION [comment] - hold alerts of matching targets" in first.rendered


def test_silence_commands_use_the_silence_book(tmp_path: Path, fake: FakeTelegram) -> None:
    running = Running(tmp_path, fake)
    try:
        fake.push_update(OPS, "/silence db* 2h disk swap")
        (made,) = answers(fake, OPS, 1)
        book = running.app.quiet.book if running.app.quiet is not None else None
        assert book is not None
        (silence,) = book.all()
        fake.push_update(OPS, "/silences")
        fake.push_update(OPS, "/silence db* forever")
        fake.push_update(OPS, f"/unsilence {silence.short_id}")
        fake.push_update(OPS, "/unsilence nothing-here")
        replies = answers(fake, OPS, 5)
        wait_for(lambda: book.all() == ())
    finally:
        running.stop()
    assert silence.targets == ("db*",) and silence.comment == "disk swap"
    assert silence.created_by == "telegram:@ops"
    assert made.rendered.startswith("🔕 Silenced db* until ")
    assert made.rendered.endswith(f"(id {silence.short_id}).\nMatches 1: db <main>")
    listed = replies[1].rendered.splitlines()
    assert listed[0] == "🔕 1 silence"
    assert listed[1].startswith(f"{silence.short_id} db* until ") and listed[1].endswith(
        " by telegram:@ops: disk swap"
    )
    assert replies[2].rendered.startswith("Not silenced: duration=")
    assert replies[3].rendered == f"🔔 Silence {silence.short_id} (db*) ended."
    assert replies[4].rendered == "No silence nothing-here. /silences lists them."


def test_check_answers_a_push_target_from_its_last_check_instead_of_consuming_pings(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    job = {"name": "nightly-job", "push_token": "a-push-token-of-16-chars", "interval": 0.2}
    running = Running(tmp_path, fake, extra=(job,))
    try:
        running.checker.verdicts["nightly-job"] = "no ping for 6m (expected every 5m)"
        wait_for(lambda: running.app.monitor.runtimes["nightly-job"].observed.checks_failed >= 1)
        fake.push_update(OPS, "/check NIGHTLY-JOB")
        (reply,) = answers(fake, OPS, 1)
    finally:
        running.stop()
    assert reply.rendered.startswith("🔴 nightly-job failed its last check (")
    assert reply.rendered.endswith("): no ping for 6m (expected every 5m)")
    (command,) = named(tmp_path, "telegram_command")
    assert (command["command"], command["result"]) == ("/check NIGHTLY-JOB", "failed")


# --------------------------------------------------------------------------- the poller alone


def poller(
    fake: FakeTelegram, tmp_path: Path, handled: list[Incoming], chats: tuple[str, ...] = (OPS,)
) -> tuple[CommandPoller, EventLog]:
    log = EventLog(None)

    def handle(incoming: Incoming, later: Callable[[str], None]) -> str:
        handled.append(incoming)
        return f"got {incoming.text}"

    api = BotApi(DEFAULT_TOKEN, fake.url)
    return (
        CommandPoller(
            api,
            chats,
            handle,
            OffsetStore(tmp_path),
            Reporter(log, logging.getLogger("keepalive.test-commands")),
            poll_timeout=1,
            conflict_backoff=0.2,
            pacer=Pacer(per_chat=0, overall=0, per_group=0),
        ),
        log,
    )


def test_a_409_conflict_is_reported_once_and_polling_backs_off_then_resumes(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    fake.conflict(times=3)
    handled: list[Incoming] = []
    cmd, log = poller(fake, tmp_path, handled)
    cmd.start()
    try:
        fake.push_update(OPS, "/status")
        wait_for(lambda: handled)
        answers(fake, OPS, 1)
    finally:
        cmd.stop()
    names = [e["event"] for e in log.recent]
    assert names.count("telegram_commands_conflict") == 1
    assert names.count("telegram_commands_resumed") == 1
    conflict = next(e for e in log.recent if e["event"] == "telegram_commands_conflict")
    assert conflict["error"].startswith("Conflict: terminated by other getUpdates request")
    assert [h.text for h in handled] == ["/status"]


def test_answers_wait_out_a_429_and_are_sent_once(tmp_path: Path, fake: FakeTelegram) -> None:
    fake.too_many_requests(times=1, retry_after=1, chat=OPS)
    handled: list[Incoming] = []
    cmd, _ = poller(fake, tmp_path, handled)
    cmd.start()
    try:
        fake.push_update(OPS, "/help")
        (answer,) = answers(fake, OPS, 1)
    finally:
        cmd.stop()
    statuses = [a.status for a in fake.attempts_to(OPS)]
    assert statuses == [429, 200]
    first, second = fake.attempts_to(OPS)
    assert second.time - first.time >= 0.9  # Telegram's retry_after was honoured
    assert answer.rendered == "got /help"


def test_a_command_sent_long_ago_is_not_run(tmp_path: Path, fake: FakeTelegram) -> None:
    handled: list[Incoming] = []
    cmd, _log = poller(fake, tmp_path, handled)
    fake.push_update(OPS, "/restart web-1", date=time.time() - 3600)
    fake.push_update(OPS, "/status")
    cmd.start()
    try:
        first, second = answers(fake, OPS, 2)
    finally:
        cmd.stop()
    assert first.rendered == "Not run: this command was sent 60 min ago, while the monitor was not reading."
    assert [h.text for h in handled] == ["/status"]
    assert second.rendered == "got /status"


def test_a_channel_name_and_a_topic_id_select_the_allowed_chats(tmp_path: Path, fake: FakeTelegram) -> None:
    handled: list[Incoming] = []
    cmd, _ = poller(fake, tmp_path, handled, chats=("@opsroom", f"{GROUP}:7"))
    cmd.start()
    try:
        fake.push_update("-100555", "/status", chat_username="OpsRoom")
        fake.push_update(GROUP, "/status", topic=3)
        fake.push_update("-100556", "/status", chat_username="other")
        wait_for(lambda: len(handled) == 2 and cmd.refused_total == 1)
    finally:
        cmd.stop()
    assert [(h.chat, h.topic) for h in handled] == [("-100555", None), (GROUP, 3)]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("/status", ("status", "")),
        ("/Check@keepalive_bot  web   1 ", ("check", "web 1")),
        ("/silence db-* 2h disk\nswap", ("silence", "db-* 2h disk swap")),
        ("hello /status", ("", "")),
    ],
)
def test_parse(text: str, parsed: tuple[str, str]) -> None:
    assert parse(text) == parsed
