"""``./start_monitor.sh --demo`` shows the whole keep-alive loop (SPEC 15): kill the example
server, and the monitor raises DOWN, restarts it with its on_down, and raises RECOVERED, with
no human; the page's /api/status shows the restart."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.test_scripts import Repo, free_port, output, processes_running, repo  # noqa: F401 - fixture


def events(root: Path) -> list[dict[str, Any]]:
    path = root / "logs" / "monitor_events.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def wait_for_event(root: Path, name: str, seconds: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        found = [e for e in events(root) if e["event"] == name]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {name} event: {[e['event'] for e in events(root)]}"
        time.sleep(0.1)


def test_the_demo_restarts_a_killed_example_server_and_recovers(repo: Repo) -> None:  # noqa: F811
    demo_port = free_port()
    started = repo.run("start_monitor.sh", "--demo", DEMO_PORT=str(demo_port))
    assert started.returncode == 0, output(started)
    assert "scripts/restart_example.sh brings it back" in started.stdout
    first = int((repo.root / "example_server.pid").read_text())
    try:
        os.kill(first, signal.SIGTERM)
        down = wait_for_event(repo.root, "target_down")
        finished = wait_for_event(repo.root, "remediation_finished")
        recovered = wait_for_event(repo.root, "target_recovered")
        port = repo.env["MONITOR_HTTP_PORT"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as answer:
            status = json.load(answer)
    finally:
        stopped = repo.run("stop_monitor.sh")
    assert stopped.returncode == 0, output(stopped)
    assert down["target"] == recovered["target"] == "example-server"
    assert (finished["trigger"], finished["outcome"], finished["exit_code"]) == ("monitor", "exited", 0)
    assert finished["output"][-1].startswith("example server restarted (PID ")
    second = int(finished["output"][-1].split("PID ")[1].split(")")[0])
    assert second != first
    (target,) = status["targets"]
    assert target["remediation"]["ok"] is True
    assert target["remediation"]["summary"].startswith(
        f"restarted by `{repo.root}/scripts/restart_example.sh {demo_port}`: exit 0 in "
    )
    assert processes_running(repo.root / "example_server.py") == []  # stop_monitor.sh stopped the new one
