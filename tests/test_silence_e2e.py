"""SPEC 12 and 13 through the real monitor process: the token, silences from the command line
and the API, the three rules of what a hold's end releases, a restart mid-silence, windows
reloaded by SIGHUP and dependencies, with a fake Bot API and targets switched on and off.

No test waits for "nothing happened" by sleeping: each waits until the target has been checked
enough times for the once-a-second hold tick to have run, then counts what arrived."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.targets import TargetServer
from tests.fakes.telegram_api import FakeTelegram
from tests.monitor_proc import MonitorProcess, base_env, free_port, run_cli

pytestmark = pytest.mark.slow
CHAT = "42"
# At 0.2 s a check, this many checks span more than the hold tick (1 s) with room to spare.
CHECKS_PAST_A_TICK = 12


@pytest.fixture
def server() -> Iterator[TargetServer]:
    with TargetServer() as srv:
        yield srv


def write_targets(path: Path, server: TargetServer, extra: str = "") -> Path:
    path.write_text(
        "[defaults]\ninterval = 0.2\nfailure_threshold = 2\ntimeout = 2\n\n"
        f'[[targets]]\nname = "db-1"\nurl = "{server.url("db1")}"\n\n'
        f'[[targets]]\nname = "router"\nurl = "{server.url("router")}"\n\n'
        f'[[targets]]\nname = "app"\nurl = "{server.url("app")}"\ndepends_on = ["router"]\n' + extra
    )
    return path


def env_for(tmp_path: Path, server: TargetServer, telegram: FakeTelegram, **overrides: str) -> dict[str, str]:
    targets = write_targets(tmp_path / "targets.toml", server)
    return base_env(
        tmp_path,
        **{
            "MONITOR_TARGETS_FILE": str(targets),
            "MONITOR_HTTP_PORT": str(free_port()),
            "REPEAT_ALERTS": "false",
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_CHAT_ID": CHAT,
            "TELEGRAM_API_URL": telegram.url,
            **overrides,
        },
    )


def call(
    env: dict[str, str], method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    """One request to the monitor: (status, JSON body or None, headers)."""
    url = f"http://127.0.0.1:{env['MONITOR_HTTP_PORT']}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    try:
        parsed = json.loads(raw) if raw.strip() else None
    except ValueError:
        parsed = None
    return status, parsed, got


def token(tmp_path: Path) -> str:
    return (tmp_path / "state" / "api_token").read_text().strip()


def bearer(tmp_path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(tmp_path)}"}


def texts(telegram: FakeTelegram) -> list[str]:
    return [m.rendered for m in telegram.messages_to(CHAT)]


def kinds(telegram: FakeTelegram, target: str) -> list[str]:
    """DOWN/RECOVERED of each message about ``target``, in order of arrival."""
    found = []
    for text in texts(telegram):
        if f"{target} " in text or f"{target}\n" in text or f"'{target}'" in text or f" {target}" in text:
            found.append("DOWN" if "DOWN" in text else "RECOVERED" if "RECOVERED" in text else "?")
    return found


def checks_pass(server: TargetServer, name: str, count: int = CHECKS_PAST_A_TICK) -> None:
    """Wait until ``name`` has been checked ``count`` more times (the hold tick ran meanwhile)."""
    start = server.count(name)
    assert server.wait_for_requests(name, start + count, timeout=30)


def restart(tmp_path: Path, env: dict[str, str]) -> MonitorProcess:
    """A second process on the same state directory, once it has started (the events file
    already holds the first one's monitor_started)."""
    mon = MonitorProcess(tmp_path, env).start()
    mon.wait_event("monitor_started", count=2)
    return mon


# ---------------------------------------------------------------------- the token (SPEC 12)


def test_the_token_is_generated_0600_reused_after_a_restart_and_guards_every_write(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        path = tmp_path / "state" / "api_token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        first = token(tmp_path)
        assert len(first) >= 32 and all(c.isalnum() or c in "-_" for c in first)
        silence = {"targets": "db-*", "duration": "1h", "comment": "disk swap"}

        status, body, headers = call(env, "POST", "/api/silences", silence)
        assert status == 401 and body["error"].startswith("this write needs Authorization: Bearer <token>")
        assert headers["WWW-Authenticate"].startswith("Bearer")
        status, body, _ = call(env, "POST", "/api/silences", silence, {"Authorization": "Bearer " + "x" * 43})
        assert (status, body) == (401, {"error": "wrong token"})
        basic = base64.b64encode(f"ops:{first}".encode()).decode()
        status, body, _ = call(env, "POST", "/api/silences", silence, {"Authorization": f"Basic {basic}"})
        assert status == 401  # never Basic for a write: a browser would replay it for any page
        status, body, _ = call(env, "DELETE", "/api/silences/whatever", None, {"Authorization": "Bearer no"})
        assert status == 401
        assert call(env, "POST", "/api/status", {})[0] == 405  # no such write: 405 as before, token or not
        assert call(env, "POST", "/api/nothing-here", {})[0] == 404
        oversized = {"targets": "db-*", "duration": "1h", "comment": "x" * 70_000}
        status, body, _ = call(env, "POST", "/api/silences", oversized, bearer(tmp_path))
        assert (status, body) == (413, {"error": "the body is larger than 65536 bytes"})
        status, created, _ = call(env, "POST", "/api/silences", silence, bearer(tmp_path))
        assert status == 201 and created["targets"] == ["db-*"] and created["comment"] == "disk swap"
        assert (created["matches"], created["matches_total"], created["remaining"]) == (["db-1"], 1, "1h")
        status, listed, _ = call(env, "GET", "/api/silences")  # reads stay open with "writes"
        assert status == 200 and [s["id"] for s in listed["silences"]] == [created["id"]]
        status, _, _ = call(env, "DELETE", f"/api/silences/{created['id'][:8]}", None, bearer(tmp_path))
        assert status == 204
        status, body, _ = call(env, "DELETE", f"/api/silences/{created['id']}", None, bearer(tmp_path))
        assert status == 404 and "no silence" in body["error"]
    finally:
        assert mon.stop() == 0
    mon = restart(tmp_path, env)
    try:
        assert token(tmp_path) == first
        status, _, _ = call(
            env, "POST", "/api/silences", {"targets": "x", "duration": "1m"}, bearer(tmp_path)
        )
        assert status == 201
    finally:
        assert mon.stop() == 0
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and p.name != "api_token")
    assert first.encode() not in written  # never logged, never in events or state


def test_http_auth_all_puts_reads_and_the_page_behind_the_token_except_health(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram, MONITOR_HTTP_AUTH="all", MONITOR_API_TOKEN="t" * 40)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        assert not (tmp_path / "state" / "api_token").exists()  # the configured token is used
        for path in ("/api/status", "/metrics", "/api/silences", "/"):
            status, _, headers = call(env, "GET", path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith("Basic"), path  # the browser asks
        basic = base64.b64encode(("anyone:" + "t" * 40).encode()).decode()
        assert call(env, "GET", "/", None, {"Authorization": f"Basic {basic}"})[0] == 200
        assert call(env, "GET", "/api/status", None, {"Authorization": "Bearer " + "t" * 40})[0] == 200
        wrong = base64.b64encode(b"anyone:nope").decode()
        assert call(env, "GET", "/metrics", None, {"Authorization": f"Basic {wrong}"})[0] == 401
        assert call(env, "GET", "/health")[0] == 200
    finally:
        assert mon.stop() == 0


def test_the_command_line_says_in_one_line_when_the_monitor_does_not_run(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram, MONITOR_API_TOKEN="t" * 40)
    for args in (["--silence", "db-*", "--for", "2h"], ["--silences"], ["--unsilence", "3f2a9c1e"]):
        result = run_cli(args, env)
        assert result.returncode == 1, args
        assert result.stderr.strip().splitlines() == [
            f"error: the monitor is not running (nothing answers on http://127.0.0.1:{env['MONITOR_HTTP_PORT']})"
        ]


# ---------------------------------------------------------------------- the three rules (SPEC 13)


def test_still_down_when_the_silence_ends_gets_one_down_then_and_its_recovery(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        made = run_cli(["--silence", "db-*", "--for", "2h", "--comment", "disk swap"], env)
        assert made.returncode == 0, made.stderr
        silence_id = made.stdout.strip()
        assert len(silence_id) == 16
        assert "silenced db-* until " in made.stderr and "(2h, 1 target(s) now)" in made.stderr
        typo = run_cli(["--silence", "bd-*", "--for", "5m"], env)
        assert typo.returncode == 0 and "warning: no target matches it yet (a typo?)" in typo.stderr
        assert run_cli(["--unsilence", typo.stdout.strip()], env).returncode == 0
        listed = run_cli(["--silences"], env)
        assert listed.returncode == 0 and silence_id[:8] in listed.stdout and "disk swap" in listed.stdout
        status = call(env, "GET", "/api/status?history=0")[1]
        (db,) = [t for t in status["targets"] if t["name"] == "db-1"]
        assert db["silenced_by"].startswith(f"silence {silence_id[:8]} (disk swap) by ")
        metrics = call(env, "GET", "/metrics")
        server.set_mode("db1", "http503")
        (held,) = mon.wait_event("alert_held", target="db-1", kind="DOWN")
        assert held["why"].startswith(f"silence {silence_id[:8]}")
        checks_pass(server, "db1")
        assert kinds(fake_telegram, "db-1") == []
        assert run_cli(["--unsilence", silence_id[:8]], env).returncode == 0
        mon.wait_event("alert_released", target="db-1")
        assert fake_telegram.wait_for_messages(1)
        server.set_mode("db1", "ok")
        assert fake_telegram.wait_for_messages(2)
        checks_pass(server, "db1")
    finally:
        assert mon.stop() == 0
    assert kinds(fake_telegram, "db-1") == ["DOWN", "RECOVERED"]
    assert len(fake_telegram.attempts) == 2
    assert metrics[0] == 200


def test_down_and_back_inside_a_silence_sends_nothing_when_it_ends(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        status, created, _ = call(
            env, "POST", "/api/silences", {"targets": "db-1", "duration": "1h"}, bearer(tmp_path)
        )
        assert status == 201
        server.set_mode("db1", "http503")
        mon.wait_event("alert_held", target="db-1", kind="DOWN")
        server.set_mode("db1", "ok")
        (dropped,) = mon.wait_event("alert_held", target="db-1", kind="RECOVERED")
        assert dropped["why"] == "down and back inside the hold: its DOWN was never notified"
        assert call(env, "DELETE", f"/api/silences/{created['id']}", None, bearer(tmp_path))[0] == 204
        mon.wait_event("silence_removed")
        checks_pass(server, "db1")
    finally:
        assert mon.stop() == 0
    assert fake_telegram.attempts == []
    assert mon.events("alert_released") == []


def test_a_notified_down_recovers_at_once_inside_a_silence(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        server.set_mode("db1", "http503")
        assert fake_telegram.wait_for_messages(1)
        assert (
            call(env, "POST", "/api/silences", {"targets": "*", "duration": "1h"}, bearer(tmp_path))[0] == 201
        )
        mon.wait_event("silence_created")
        server.set_mode("db1", "ok")
        assert fake_telegram.wait_for_messages(2)
        checks_pass(server, "db1")
    finally:
        assert mon.stop() == 0
    assert kinds(fake_telegram, "db-1") == ["DOWN", "RECOVERED"]
    assert mon.events("alert_held") == []


def test_a_restart_in_the_middle_of_a_silence_keeps_the_silence_and_the_held_down(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        made = run_cli(["--silence", "db-1", "--for", "1h", "--comment", "kernel update"], env)
        silence_id = made.stdout.strip()
        server.set_mode("db1", "http503")
        mon.wait_event("alert_held", target="db-1", kind="DOWN")
    finally:
        assert mon.stop() == 0
    mon = restart(tmp_path, env)
    try:
        listed = run_cli(["--silences"], env)
        assert silence_id[:8] in listed.stdout and "kernel update" in listed.stdout
        checks_pass(server, "db1")
        assert fake_telegram.attempts == []  # still held after the restart, not re-raised
        assert run_cli(["--unsilence", silence_id], env).returncode == 0
        mon.wait_event("alert_released", target="db-1")
        assert fake_telegram.wait_for_messages(1)
        server.set_mode("db1", "ok")
        assert fake_telegram.wait_for_messages(2)
        checks_pass(server, "db1")
    finally:
        assert mon.stop() == 0
    assert kinds(fake_telegram, "db-1") == ["DOWN", "RECOVERED"]


def test_a_silence_expires_on_its_own_and_releases_what_it_held(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        body = {"targets": "db-1", "duration": "4s", "comment": "quick reboot", "created_by": "carol"}
        assert call(env, "POST", "/api/silences", body, bearer(tmp_path))[0] == 201
        server.set_mode("db1", "http503")
        mon.wait_event("alert_held", target="db-1", kind="DOWN")
        (expired,) = mon.wait_event("silence_expired")
        assert (expired["targets"], expired["comment"], expired["created_by"]) == (
            ["db-1"],
            "quick reboot",
            "carol",
        )
        mon.wait_event("alert_released", target="db-1")
        assert fake_telegram.wait_for_messages(1)
        assert call(env, "GET", "/api/silences")[1] == {"silences": []}
    finally:
        assert mon.stop() == 0
    assert kinds(fake_telegram, "db-1") == ["DOWN"]


# ---------------------------------------------------------------------- windows and dependencies


def test_a_window_reloaded_away_by_sighup_releases_the_down_it_held(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    started = datetime.now(UTC) - timedelta(minutes=5)
    window = (
        f'\n[[maintenance]]\nname = "patching"\ntargets = ["db-*"]\nstart = "{started:%H:%M}"\n'
        'duration = "1h"\ntimezone = "UTC"\n'
    )
    env = env_for(tmp_path, server, fake_telegram)
    write_targets(Path(env["MONITOR_TARGETS_FILE"]), server, window)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        server.set_mode("db1", "http503")
        (held,) = mon.wait_event("alert_held", target="db-1", kind="DOWN")
        assert held["why"] == "maintenance patching"
        (opened,) = mon.wait_event("maintenance_started")
        assert opened["window"] == "patching" and opened["until"].startswith(
            f"{started + timedelta(hours=1):%Y-%m-%dT%H:%M}"
        )
        status = call(env, "GET", "/api/status?history=0")[1]
        assert status["maintenance"][0]["name"] == "patching"
        assert status["monitor"]["targets_in_maintenance"] == 1
        write_targets(Path(env["MONITOR_TARGETS_FILE"]), server)  # the window is gone
        mon.signal(signal.SIGHUP)
        mon.wait_event("config_reloaded")
        mon.wait_event("maintenance_ended", window="patching")
        mon.wait_event("alert_released", target="db-1")
        assert fake_telegram.wait_for_messages(1)
    finally:
        assert mon.stop() == 0
    assert kinds(fake_telegram, "db-1") == ["DOWN"]


def test_a_parent_down_holds_its_dependent_names_it_and_releases_it_when_it_recovers(
    tmp_path: Path, server: TargetServer, fake_telegram: FakeTelegram
) -> None:
    env = env_for(tmp_path, server, fake_telegram)
    mon = MonitorProcess(tmp_path, env).start()
    try:
        server.wait_for_requests("app", 2)
        server.set_mode("router", "http503")
        server.set_mode("app", "http503")
        (held,) = mon.wait_event("alert_held", target="app", kind="DOWN")
        assert held["why"].startswith("depends on 'router' (")
        assert fake_telegram.wait_for_messages(1)
        (router_down,) = texts(fake_telegram)
        assert "router" in router_down and "dependents failing too: app" in router_down
        status = call(env, "GET", "/api/status?history=0")[1]
        (app,) = [t for t in status["targets"] if t["name"] == "app"]
        assert app["silenced_by"] == "depends on 'router' (down)" and app["held_alert"] is True
        server.set_mode("router", "ok")
        mon.wait_event("alert_released", target="app")
        assert fake_telegram.wait_for_messages(3)  # the router's RECOVERED, then app's DOWN
    finally:
        assert mon.stop() == 0
    rendered = texts(fake_telegram)
    assert "RECOVERED" in rendered[1] and "router" in rendered[1]
    assert "DOWN" in rendered[2] and "app" in rendered[2]
    assert len(fake_telegram.attempts) == 3
    assert os.path.exists(tmp_path / "state" / "holds.json")
