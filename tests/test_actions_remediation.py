"""Remediation (SPEC 15): a real target process restarted by its on_down, a command hanging past
its timeout (its whole process group killed, nothing left behind), the command's environment
scanned for secrets, the per-outage limit, holds, one run at a time, and a stop mid-run."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from keepalive.actions.remediation import OutputTail, Remediator, clean_environment
from keepalive.actions.result import RemediationResult
from keepalive.alerts import Alert, AlertKind
from keepalive.engine.announcer import Reporter
from keepalive.events import EventLog
from keepalive.notifiers.email import build_message
from keepalive.notifiers.telegram import build_text
from keepalive.scrub import register_secret
from keepalive.targets import Target
from tests.fakes.telegram_api import render

REPO = Path(__file__).resolve().parent.parent
T0 = 1_700_000_000.0
SECRET_TOKEN = "987654321:AAHremediationEnvSecretToken_abcdefghij"


def target(
    on_down: list[str] | tuple[str, ...], max_remediations: int = 3, remediation_timeout: float = 60.0
) -> Target:
    return Target(
        "tq-server",
        "http://ops:pw@127.0.0.1:9/health",
        5.0,
        2,
        1,
        2.0,
        on_down=tuple(on_down),
        max_remediations=max_remediations,
        remediation_timeout=remediation_timeout,
    )


def down(name: str = "tq-server", since: float = T0, sequence: int = 0, reason: str = "HTTP 503") -> Alert:
    return Alert(
        id=f"{name}-{since}-{sequence}",
        kind=AlertKind.DOWN,
        target=name,
        url="http://ops:***@127.0.0.1:9/health",
        reason=reason,
        since=since,
        at=since + 10,
        failed_checks=2 + sequence,
        downtime=None,
        host="mon-1",
    )


class Holds:
    def __init__(self) -> None:
        self.why: str | None = None

    def is_held(self, name: str) -> str | None:
        return self.why


def remediator(
    tgt: Target,
    holds: Holds | None = None,
    environ: dict[str, str] | None = None,
    secret_names: frozenset[str] | set[str] = frozenset(),
    kill_grace: float = 2.0,
) -> tuple[Remediator, EventLog, list[RemediationResult]]:
    events = EventLog(None)
    results: list[RemediationResult] = []
    rem = Remediator(
        Reporter(events, logging.getLogger("keepalive.test-remediation")),
        lambda name: tgt if name.casefold() == tgt.name.casefold() else None,
        holds=holds,
        environ=environ,
        secret_names=secret_names,
        on_result=results.append,
        kill_grace=kill_grace,
    )
    return rem, events, results


def events_named(events: EventLog, name: str) -> list[dict[str, object]]:
    return [e for e in events.recent if e["event"] == name]


async def until(predicate: Callable[[], object], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- a real restart


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(port: int) -> bytes | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
            return bytes(answer.read())
    except OSError:
        return None


@pytest.fixture
def example_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    pid_file = tmp_path / "example.pid"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "example_server.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 15
    while health(port) is None:
        assert time.monotonic() < deadline and proc.poll() is None, "the example server did not start"
        time.sleep(0.05)
    yield port, pid_file
    proc.terminate()
    proc.wait(10)
    pid = int(pid_file.read_text())
    if pid != proc.pid:
        os.kill(pid, signal.SIGTERM)


@pytest.mark.skipif(
    not (REPO / ".venv/bin/python").exists(), reason="the restart script runs the .venv python"
)
def test_a_killed_target_process_is_restarted_by_its_on_down(
    example_server: tuple[int, Path], tmp_path: Path
) -> None:
    port, pid_file = example_server
    first = int(pid_file.read_text())
    os.kill(first, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while health(port) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    script = str(REPO / "scripts/restart_example.sh")
    tgt = target([script, str(port), str(pid_file), str(tmp_path / "example.log")], remediation_timeout=30)
    rem, events, results = remediator(tgt)

    async def go() -> None:
        rem.after_stored([down()])
        await until(lambda: results)

    asyncio.run(go())
    (result,) = results
    assert (result.outcome, result.exit_code, result.trigger) == ("exited", 0, "monitor")
    assert result.ok
    assert result.output[-1].startswith("example server restarted (PID ")
    assert result.summary().startswith(f"restarted by `{script} {port} ")
    assert " exit 0 in " in result.summary()
    second = int(pid_file.read_text())
    assert second != first
    body = health(port)
    assert body is not None and b'"status"' in body
    assert [e["event"] for e in events.recent] == ["remediation_started", "remediation_finished"]
    finished = events.recent[1]
    assert finished["exit_code"] == 0 and finished["outcome"] == "exited" and finished["trigger"] == "monitor"


# --------------------------------------------------------------------------- timeout


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` (R, S, Z ...), None when it does not exist."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return None


def group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:
                members.append(int(entry.name))
    return members


def test_a_command_hanging_past_its_timeout_has_its_whole_group_killed_and_leaves_no_zombie(
    tmp_path: Path,
) -> None:
    pids = tmp_path / "pids"
    # A leader that ignores SIGTERM, with a child of its own: both must go, by SIGKILL.
    code = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
        "print('waiting for ever', flush=True)\n"
        "time.sleep(600)\n"
    )
    tgt = target([sys.executable, "-c", code], remediation_timeout=1.0)
    rem, _, results = remediator(tgt, kill_grace=0.5)

    async def go() -> None:
        rem.after_stored([down()])
        await until(lambda: results)

    asyncio.run(go())
    (result,) = results
    assert result.outcome == "timeout"
    assert result.exit_code == -signal.SIGKILL
    assert result.error == "no exit within remediation_timeout=1 s"
    assert result.output == ("waiting for ever",)
    assert "timed out after" in result.summary() and "process group was killed" in result.summary()
    leader, child = (int(p) for p in pids.read_text().split())
    assert process_state(leader) is None  # our child, reaped by us: not even a zombie
    # The grandchild was SIGKILLed with the group. Orphaned, it is reaped by init (pid 1), which
    # in some containers never reaps: gone or dead is what the monitor can guarantee.
    deadline = time.monotonic() + 10
    while process_state(child) not in (None, "Z"):
        assert time.monotonic() < deadline, f"the group's other process {child} still runs"
        time.sleep(0.05)
    assert group_members(leader) in ([], [child])
    assert all(process_state(pid) in (None, "Z") for pid in group_members(leader))
    assert not rem.running("tq-server")


# --------------------------------------------------------------------------- environment


def test_the_command_environment_holds_no_secret_and_says_what_went_down(tmp_path: Path) -> None:
    register_secret(SECRET_TOKEN, "smtp-pass-remediation-9")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/home/ops",
        "TELEGRAM_BOT_TOKEN": SECRET_TOKEN,
        "SMTP_PASSWORD": "smtp-pass-remediation-9",
        "MONITOR_API_TOKEN": "a" * 40,
        "WEBHOOK_SECRET": "hook-secret",
        "SOME_DB_PASSWORD": "x",
        "ODD_NAME": f"prefix {SECRET_TOKEN} suffix",  # a secret under an innocent name
        "UNREGISTERED_TOKEN_SHAPE": "123456789:AAHshapedLikeABotTokenButNotRegistered0",
        "KEEPALIVE_TARGET": "spoofed",
        "LANG": "C.UTF-8",
    }
    out = tmp_path / "env.txt"
    code = f"import os; open({str(out)!r}, 'w').write(repr(dict(os.environ)))"
    tgt = target([sys.executable, "-c", code])
    rem, _, results = remediator(tgt, environ=environ, secret_names={"MONITOR_API_TOKEN"})

    async def go() -> None:
        rem.after_stored([down(reason=f"HTTP 503 from {SECRET_TOKEN}")])
        await until(lambda: results)

    asyncio.run(go())
    assert results[0].ok
    seen = out.read_text()
    for secret in (SECRET_TOKEN, "smtp-pass-remediation-9", "a" * 40, "hook-secret", "AAHshapedLike"):
        assert secret not in seen
    env = eval(seen)  # our own repr of a dict of strings
    assert env["KEEPALIVE_TARGET"] == "tq-server"
    assert env["KEEPALIVE_URL"] == "http://ops:***@127.0.0.1:9/health"
    assert env["KEEPALIVE_REASON"] == "HTTP 503 from ***"
    assert env["KEEPALIVE_FAILED_CHECKS"] == "2"
    assert env["KEEPALIVE_TRIGGER"] == "monitor"
    assert env["HOME"] == "/home/ops" and env["LANG"] == "C.UTF-8"
    assert (
        sorted(k for k in env if k not in ("PATH", "HOME", "LANG") and not k.startswith("KEEPALIVE_")) == []
    )


def test_clean_environment_keeps_what_is_not_secret() -> None:
    register_secret(SECRET_TOKEN)
    env = clean_environment({"A": "1", "GITHUB_TOKEN": "t", "B": SECRET_TOKEN, "X": "y"}, ["X"])
    assert env == {"A": "1"}


# --------------------------------------------------------------------------- limits


def has_results(results: list[RemediationResult], count: int) -> Callable[[], bool]:
    return lambda: len(results) == count


def test_at_most_max_remediations_per_outage_and_a_new_outage_starts_again() -> None:
    tgt = target([sys.executable, "-c", "pass"], max_remediations=2)
    rem, events, results = remediator(tgt)

    async def go() -> None:
        for sequence in range(3):
            rem.after_stored([down(sequence=sequence)])
            await until(has_results(results, min(sequence + 1, 2)))
        rem.after_stored([down(since=T0 + 3600)])  # a new outage
        await until(lambda: len(results) == 3)

    asyncio.run(go())
    skipped = events_named(events, "remediation_skipped")
    assert [s["why"] for s in skipped] == ["max_remediations=2 reached in this outage"]
    assert len(events_named(events, "remediation_finished")) == 3


def test_a_held_down_is_not_remediated_and_says_why() -> None:
    holds = Holds()
    holds.why = "maintenance nightly-backup"
    tgt = target([sys.executable, "-c", "pass"])
    rem, events, results = remediator(tgt, holds=holds)

    async def go() -> None:
        rem.after_stored([down()])
        holds.why = None
        rem.after_stored([down(sequence=1)])
        await until(lambda: results)

    asyncio.run(go())
    assert [(e["event"], e.get("why")) for e in events.recent][:1] == [
        ("remediation_skipped", "its DOWN is held: maintenance nightly-backup")
    ]
    assert len(results) == 1


def test_one_run_per_target_at_a_time_and_on_demand_names_match_without_case(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    code = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.02)\nprint('done')\n"
    tgt = target([sys.executable, "-c", code])
    rem, events, results = remediator(tgt)

    async def go() -> None:
        task = rem.run_now("TQ-SERVER", "api")
        with pytest.raises(RuntimeError, match="'tq-server' is being remediated already"):
            rem.run_now("tq-server", "telegram:@ops")
        rem.after_stored([down()])
        gate.write_text("")
        result = await task
        assert result.output == ("done",) and result.trigger == "api"

    asyncio.run(go())
    assert len(results) == 1
    assert [s["why"] for s in events_named(events, "remediation_skipped")] == ["a run is still going"]


def test_on_demand_errors_name_the_problem() -> None:
    rem, _, _ = remediator(target([]))

    async def go() -> None:
        with pytest.raises(LookupError, match="no target named 'nope'"):
            rem.run_now("nope", "api")
        with pytest.raises(ValueError, match="target 'tq-server' has no on_down command"):
            rem.run_now("tq-server", "api")

    asyncio.run(go())


def test_a_missing_program_is_recorded_as_not_started() -> None:
    rem, _, results = remediator(target(["/nonexistent/restart-me", "now"]))

    async def go() -> None:
        rem.after_stored([down()])
        await until(lambda: results)

    asyncio.run(go())
    (result,) = results
    assert (result.outcome, result.exit_code) == ("not_started", None)
    assert result.error == "No such file or directory: /nonexistent/restart-me"
    assert result.summary() == (
        "restarted by `/nonexistent/restart-me now`: could not start (No such file or directory: "
        "/nonexistent/restart-me)"
    )


def test_output_is_bounded_to_the_last_lines_and_scrubbed() -> None:
    register_secret(SECRET_TOKEN)
    code = (
        "import sys\n"
        "for i in range(5000): print('line', i)\n"
        f"print('token {SECRET_TOKEN}')\n"
        "sys.stdout.write('x' * 100000)\n"
        "sys.exit(3)\n"
    )
    rem, _, results = remediator(target([sys.executable, "-c", code]))

    async def go() -> None:
        rem.after_stored([down()])
        await until(lambda: results)

    asyncio.run(go())
    (result,) = results
    assert (result.outcome, result.exit_code, result.ok) == ("exited", 3, False)
    assert len(result.output) == 20
    assert result.output[:2] == ("line 4982", "line 4983")  # 18 short lines, the token, the long one
    assert "token ***" in result.output
    assert all(len(line) <= 300 for line in result.output)
    assert result.summary().endswith(": exit 3 in " + result.summary().rsplit(" in ", 1)[1])


def test_output_tail_cuts_an_endless_line() -> None:
    tail = OutputTail(lines=3)
    tail.feed(b"a\nb\n" + b"z" * 10_000)
    tail.feed(b"zzz\n\x1b[31mred\x00\n")
    lines = tail.lines()
    assert lines[0] == "b"
    assert len(lines[1]) == 300 and lines[1].endswith("…")  # the rest of that line is dropped
    assert lines[2] == " [31mred "


def test_a_stop_waits_the_grace_then_kills_the_group_and_records_it_interrupted(tmp_path: Path) -> None:
    code = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('busy', flush=True)\ntime.sleep(600)\n"
    rem, events, results = remediator(target([sys.executable, "-c", code]), kill_grace=0.3)

    async def go() -> None:
        rem.after_stored([down()])
        await until(lambda: events_named(events, "remediation_started"))
        await rem.stop(0.2)
        rem.after_stored([down(sequence=1)])  # nothing starts while stopping

    asyncio.run(go())
    (result,) = results
    assert result.outcome == "interrupted"
    assert result.error == "the monitor stopped; its process group was killed"
    assert result.exit_code == -signal.SIGKILL
    assert len(events_named(events, "remediation_started")) == 1


def test_the_next_alert_note_names_the_run_once() -> None:
    rem, _, results = remediator(target([sys.executable, "-c", "pass"]))

    async def go() -> None:
        rem.after_stored([down()])
        await until(lambda: results)

    asyncio.run(go())
    note = rem.take_note("tq-server", AlertKind.RECOVERED)
    assert note.startswith("came back after the restart: restarted by `")
    assert " exit 0 in " in note
    assert rem.take_note("tq-server", AlertKind.DOWN) == ""


def test_alerts_name_the_remediation_escaped_in_telegram_and_as_a_row_in_e_mail() -> None:
    note = "restarted by `systemctl restart <tq> & co`: exit 0 in 1.2 s"
    alert = replace(down(), remediation=note)
    text = build_text([alert])
    assert "restart &lt;tq&gt; &amp; co" in text
    assert f"Remediation: {note}" in render(text).splitlines()
    body = build_message([alert], "monitor@example.com", "ops@example.com").get_content()
    assert f"Remediation:   {note}" in body.splitlines()
    assert "Remediation" not in build_text([down()])
