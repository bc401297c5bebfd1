"""The keep-alive loop through the real monitor (in process, real checker, real outbox, fake Bot
API): a killed example server goes DOWN, its on_down restarts it, RECOVERED says so; the
result is on /api/status; POST /api/targets/<name>/remediate is behind the API token."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from keepalive.engine.app import MonitorApp
from keepalive.notifiers.log import LogNotifier
from tests.fakes.engine import ScriptedChecker, targets_settings, toml_targets
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegram
from tests.monitor_proc import free_port

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts/restart_example.sh"
pytestmark = pytest.mark.skipif(
    not (REPO / ".venv/bin/python").exists(), reason="the restart script runs the .venv python"
)


def health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture
def example(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    pid_file = tmp_path / "example.pid"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "example_server.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 15
    while not health(port):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    yield port, pid_file
    proc.terminate()
    proc.wait(10)
    with_pid = int(pid_file.read_text())
    if with_pid != proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(with_pid, signal.SIGTERM)


def events(tmp_path: Path) -> list[dict[str, object]]:
    path = tmp_path / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def named(tmp_path: Path, name: str) -> list[dict[str, object]]:
    return [e for e in events(tmp_path) if e["event"] == name]


async def until(condition: Callable[[], object], seconds: float = 30) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)


def test_a_killed_example_server_goes_down_is_restarted_and_recovers_with_the_restart_named(
    tmp_path: Path, example: tuple[int, Path]
) -> None:
    port, pid_file = example
    on_down = [str(SCRIPT), str(port), str(pid_file), str(tmp_path / "example.log")]
    entry = {
        "name": "Example",
        "url": f"http://127.0.0.1:{port}/health",
        "interval": 0.3,
        "timeout": 2,
        "failure_threshold": 2,
        "on_down": on_down,
        "remediation_timeout": 30,
    }
    with FakeTelegram() as fake:
        settings = targets_settings(
            tmp_path,
            toml_targets(entry),
            MONITOR_HTTP_HOST="127.0.0.1",
            MONITOR_HTTP_PORT=str(free_port()),
            TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
            TELEGRAM_CHAT_ID="-1001234567890:42",
            TELEGRAM_API_URL=fake.url,
            TELEGRAM_SILENT_RECOVERY="true",
        )
        app = MonitorApp.build(settings)
        first_pid = int(pid_file.read_text())

        async def go() -> None:
            stop = asyncio.Event()
            started = asyncio.Event()
            task = asyncio.create_task(app.run(stop, started.set))
            await asyncio.wait_for(started.wait(), 20)
            assert app.web_address is not None
            await until(lambda: app.monitor.runtimes["Example"].observed.checks_ok >= 1)
            os.kill(first_pid, signal.SIGTERM)
            await until(lambda: named(tmp_path, "target_recovered"))
            await until(lambda: len(fake.messages) >= 2)
            async with aiohttp.ClientSession() as session:
                async with session.get(app.web_address + "api/status") as answer:
                    status = await answer.json()
                url = app.web_address + "api/targets/example/remediate"
                async with session.post(url) as refused:
                    assert refused.status == 401
                headers = {"Authorization": f"Bearer {app.api_token}", "X-Keepalive-User": "ops"}
                async with session.post(url + "?wait=1", headers=headers) as done:
                    assert done.status == 200
                    body = await done.json()
                async with session.post(
                    app.web_address + "api/targets/nope/remediate", headers=headers
                ) as nope:
                    assert nope.status == 404
                    assert (await nope.json()) == {"error": "no target named 'nope'"}
            stop.set()
            await task
            (entry_status,) = [t for t in status["targets"] if t["name"] == "Example"]
            shown = entry_status["remediation"]
            assert (shown["outcome"], shown["exit_code"], shown["trigger"], shown["ok"]) == (
                "exited",
                0,
                "monitor",
                True,
            )
            assert shown["output"][-1].startswith("example server restarted (PID ")
            assert body["target"] == "Example"
            assert (body["remediation"]["trigger"], body["remediation"]["exit_code"]) == ("api:ops", 0)

        try:
            asyncio.run(go())
        finally:
            app.close()

    assert health(port)
    assert int(pid_file.read_text()) != first_pid
    written = events(tmp_path)
    # The first outage is the kill; the on-demand restart above may cause a second, brief one.
    down_event = next(e for e in written if e["event"] == "target_down")
    stored_at = next(
        i
        for i, e in enumerate(written)
        if e["event"] == "alert_queued" and e["alert_id"] == down_event["alert_id"]
    )
    started_at = next(i for i, e in enumerate(written) if e["event"] == "remediation_started")
    assert stored_at < started_at  # the command starts only once the DOWN is in the outbox
    recovered_event = named(tmp_path, "target_recovered")[0]
    assert recovered_event["remediation"].startswith("came back ")  # the log line says it too
    finished = named(tmp_path, "remediation_finished")[0]
    assert (finished["target"], finished["outcome"], finished["exit_code"], finished["trigger"]) == (
        "Example",
        "exited",
        0,
        "monitor",
    )
    down, recovered = fake.messages[:2]
    assert "DOWN" in down.rendered and "RECOVERED" in recovered.rendered
    # Forum topic 42 of the supergroup, alerts and all; the recovery without a sound.
    assert (down.chat_id, down.payload["message_thread_id"]) == ("-1001234567890", 42)
    assert recovered.payload["message_thread_id"] == 42
    assert recovered.payload.get("disable_notification") is True
    assert "disable_notification" not in down.payload
    command = f"{SCRIPT} {port} {pid_file} {tmp_path / 'example.log'}"
    (line,) = [x for x in recovered.rendered.splitlines() if x.startswith("Remediation: ")]
    # Back once the command exited (almost always), or while its last line was being written.
    assert line.startswith(
        f"Remediation: came back after the restart: restarted by `{command}`: exit 0 in "
    ) or (line == f"Remediation: came back while `{command}` was running (started by monitor)")


def test_a_down_held_by_a_silence_is_not_remediated_until_the_silence_ends(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    on_down = [sys.executable, "-c", f"open({str(marks)!r}, 'a').write('ran\\n')"]
    entry = {"name": "db", "url": "http://db.example/health", "interval": 0.2, "failure_threshold": 1}
    # One DOWN per outage (no repeats): the held one, released when the silence ends.
    settings = targets_settings(tmp_path, toml_targets({**entry, "on_down": on_down}), REPEAT_ALERTS="false")
    checker = ScriptedChecker(time.time)
    checker.verdicts["db"] = "HTTP 503"
    app = MonitorApp.build(settings, notifier_factory=lambda s: [LogNotifier()], checker=checker)
    assert app.quiet is not None
    silence = app.quiet.book.create("db*", "1h", "disk swap", "ops")

    async def go() -> None:
        stop = asyncio.Event()
        started = asyncio.Event()
        task = asyncio.create_task(app.run(stop, started.set))
        await asyncio.wait_for(started.wait(), 20)
        await until(lambda: named(tmp_path, "alert_held"))
        # Checks go on while it is held (a few rounds): still nothing runs.
        checks = app.monitor.checks_total
        await until(lambda: app.monitor.checks_total >= checks + 5)
        assert named(tmp_path, "remediation_started") == [] and not marks.exists()
        assert app.quiet is not None
        await asyncio.to_thread(app.quiet.book.remove, silence.id)
        await until(lambda: named(tmp_path, "remediation_finished"))
        stop.set()
        await task

    try:
        asyncio.run(go())
    finally:
        app.close()
    assert marks.read_text() == "ran\n"
    written = [e["event"] for e in events(tmp_path)]
    assert (
        written.index("alert_held") < written.index("alert_released") < written.index("remediation_started")
    )
