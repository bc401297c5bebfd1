"""The Monitor in-process with its outside world passed in (tests/fakes/engine.py): a loop clock
moved by hand, a scripted checker, an outbox and a state store that can fail."""

from __future__ import annotations

import json
from pathlib import Path

from keepalive.alerts import AlertKind
from keepalive.state import Status
from tests.fakes.engine import Engine, run, targets_settings, toml_targets

SECRET = "s3cr3t-pw"


def one_target(tmp_path: Path, url: str = "http://api.example/health", **extra: object) -> Engine:
    entry = {"name": "api", "url": url, "interval": 1.0, "failure_threshold": 2, **extra}
    return Engine(targets_settings(tmp_path, toml_targets(entry), REPEAT_ALERTS="false"))


def test_setting_the_wall_clock_back_an_hour_delays_no_check(tmp_path: Path) -> None:
    engine = one_target(tmp_path)

    async def go() -> None:
        await engine.start()
        await engine.step(0.1)
        assert engine.checker.checked == ["api"]
        engine.wall.now -= 3600  # NTP, or an operator, sets the clock back
        for _ in range(5):
            await engine.step(1.0)
        assert len(engine.checker.checked) == 6  # one a second, as before the jump
        (view,) = engine.monitor.snapshot().targets
        assert view.last_check == engine.wall.now  # wall time is what is shown
        await engine.monitor.stop()

    run(go)


def test_an_outage_is_announced_once_with_the_url_password_masked_everywhere(tmp_path: Path) -> None:
    engine = one_target(tmp_path, url=f"http://ops:{SECRET}@api.example/health")

    async def go() -> None:
        await engine.start()
        engine.checker.verdicts["api"] = "HTTP 503"
        for _ in range(4):
            await engine.step(1.0)
        await engine.until(lambda: len(engine.outbox.stored) == 1, "the DOWN alert stored")
        await engine.until(lambda: (tmp_path / "state" / "state.json").exists(), "state saved")
        (alert,) = engine.outbox.stored
        assert alert.kind is AlertKind.DOWN
        assert alert.url == "http://ops:***@api.example/health"
        assert alert.failed_checks == 2 and alert.reason == "HTTP 503"
        # The check itself still uses the password.
        assert set(engine.checker.seen_urls) == {f"http://ops:{SECRET}@api.example/health"}
        await engine.monitor.stop()

    run(go)
    assert SECRET not in json.dumps(engine.events.recent)
    assert SECRET not in (tmp_path / "state" / "state.json").read_text()
    assert SECRET not in json.dumps(engine.monitor.status(include_history=True))
    names = [e["event"] for e in engine.events.recent]
    assert names.count("target_down") == 1 and names.count("alert_queued") == 1


def test_a_restart_keeps_an_outage_of_a_target_with_a_password(tmp_path: Path) -> None:
    url = f"http://ops:{SECRET}@api.example/health"
    first = one_target(tmp_path, url=url)

    async def outage() -> None:
        await first.start()
        first.checker.verdicts["api"] = "HTTP 503"
        for _ in range(3):
            await first.step(1.0)
        await first.monitor.stop()

    run(outage)
    second = one_target(tmp_path, url=url)

    async def restart() -> None:
        await second.start()
        (rt,) = second.monitor.runtimes.values()
        assert rt.observed.state.status is Status.DOWN  # matched although the file holds no password
        await second.step(1.0)  # it passes now: RECOVERED, not silence
        await second.until(lambda: len(second.outbox.stored) == 1, "the RECOVERED alert stored")
        assert second.outbox.stored[0].kind is AlertKind.RECOVERED
        await second.monitor.stop()

    run(restart)


def test_health_is_503_naming_the_outbox_once_storing_alerts_fails_past_the_grace(tmp_path: Path) -> None:
    engine = Engine(
        targets_settings(
            tmp_path, toml_targets({"name": "api", "url": "http://api.example/", "interval": 1.0})
        ),
        alert_path_grace=30.0,
    )

    async def go() -> None:
        await engine.start()
        engine.outbox.broken.set()
        engine.checker.verdicts["api"] = "HTTP 500"
        for _ in range(3):
            await engine.step(1.0)
        await engine.until(lambda: engine.monitor.persister.storing.since is not None, "a failed store")
        engine.monotonic.now += 10.0
        assert engine.monitor.health()[0] is True  # 13 s of failing: within the grace
        engine.monotonic.now += 30.0
        healthy, body = engine.monitor.health()
        assert healthy is False
        assert body["status"] == "alert_path_failing"
        assert any(
            p.startswith("storing alerts in the outbox has failed for ") and "No space left on device" in p
            for p in body["problems"]
        ), body["problems"]
        engine.outbox.broken.clear()
        await engine.until(lambda: len(engine.outbox.stored) == 1, "the alert stored after all")
        engine.monotonic.now += 2.0
        await engine.until(
            lambda: engine.monitor.persister.outbox_broken.since is None, "outbox figures read"
        )
        healthy, body = engine.monitor.health()
        assert (healthy, body["status"], body["problems"]) == (True, "ok", [])
        await engine.monitor.stop()

    run(go)


def test_health_is_503_naming_the_state_file_when_saving_keeps_failing(tmp_path: Path) -> None:
    engine = one_target(tmp_path)

    async def go() -> None:
        await engine.start()
        engine.store.broken.set()
        engine.checker.verdicts["api"] = "HTTP 500"
        await engine.step(1.0)
        await engine.until(lambda: engine.monitor.persister.saving.since is not None, "a failed save")
        engine.monotonic.now += 31.0
        healthy, body = engine.monitor.health()
        assert healthy is False and body["status"] == "alert_path_failing"
        (problem,) = body["problems"]
        state_file = tmp_path / "state" / "state.json"
        assert problem.startswith(f"saving state to {state_file} has failed for 31 s")
        assert problem.endswith("Read-only file system")
        snapshot = engine.monitor.snapshot()
        assert snapshot.progressing is True and snapshot.healthy is False  # keepalive_up is 0
        assert engine.monitor.problem() == problem  # and the heartbeat pauses, saying so
        engine.store.broken.clear()
        # Retried on its own (no further state change needed).
        await engine.until(lambda: engine.store.saves >= 1, "a save after the disk came back")
        engine.monotonic.now += 2.0
        assert engine.monitor.health()[0] is True
        assert engine.monitor.problem() is None
        await engine.monitor.stop()

    run(go)


def test_a_stalled_loop_outranks_a_failing_alert_path(tmp_path: Path) -> None:
    engine = one_target(tmp_path)

    async def go() -> None:
        await engine.start()
        engine.store.broken.set()
        engine.checker.verdicts["api"] = "HTTP 500"
        await engine.step(1.0)
        await engine.until(lambda: engine.monitor.persister.saving.since is not None, "a failed save")
        engine.monotonic.now += 31.0
        (rt,) = engine.monitor.runtimes.values()
        rt.next_due -= 100.0  # overdue by far more than timeout + STALL_GRACE
        body = engine.monitor.health()[1]
        assert body["status"] == "stalled"
        assert body["problems"][0] == "the checking loop has stopped making progress"
        assert len(body["problems"]) == 2
        engine.store.broken.clear()
        await engine.monitor.stop()

    run(go)


def test_the_snapshot_is_built_at_most_once_a_second_and_reuses_unchanged_targets(tmp_path: Path) -> None:
    entries = [
        {"name": n, "url": f"http://{n}.example/", "interval": i} for n, i in (("a", 1.0), ("b", 60.0))
    ]
    engine = Engine(targets_settings(tmp_path, toml_targets(*entries)))

    async def go() -> None:
        await engine.start()
        await engine.step(0.5)
        first = engine.monitor.snapshot()
        assert engine.monitor.snapshot() is first  # same object: renderers may cache on it
        await engine.step(0.99)  # "a" checked again meanwhile
        assert engine.monitor.snapshot() is first
        engine.monotonic.now += 0.02
        second = engine.monitor.snapshot()
        assert second is not first
        assert second.targets[1] is first.targets[1]  # "b" unchanged: its part is reused
        assert second.targets[0] is not first.targets[0]
        assert second.targets[0].checks_ok_total == 2
        await engine.monitor.stop()

    run(go)


def test_a_fresh_snapshot_with_history_also_serves_requests_without_it(tmp_path: Path) -> None:
    entries = [{"name": "a", "url": "http://a.example/", "interval": 1.0}]
    engine = Engine(targets_settings(tmp_path, toml_targets(*entries)))

    async def go() -> None:
        await engine.start()
        await engine.step(0.5)
        full = engine.monitor.snapshot(include_history=True)
        assert engine.monitor.snapshot() is full  # /metrics after the page's poll: no second build
        assert len(full.targets[0].history or ()) == 1
        engine.monotonic.now += 1.01
        bare = engine.monitor.snapshot()
        assert bare is not full and bare.targets[0].history is None
        assert engine.monitor.snapshot(include_history=True) is not bare  # the reverse never
        await engine.monitor.stop()

    run(go)


def test_a_poisoned_state_record_is_set_aside_and_the_rest_restored(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    down = {"status": "down", "failures": 0, "outage_failures": 4, "successes": 0, "alerts_raised": 1}
    (state / "state.json").write_text(
        '{"version": 1, "targets": {'
        f'"a": {json.dumps({"url": "http://a.example/", **down, "since": 1e300})}, '
        f'"b": {json.dumps({"url": "http://b.example/", **down, "since": 1_699_999_000.0})}'
        "}}"
    )
    entries = [{"name": n, "url": f"http://{n}.example/", "interval": 1.0} for n in ("a", "b")]
    engine = Engine(targets_settings(tmp_path, toml_targets(*entries)))

    async def go() -> None:
        await engine.start()
        runtimes = engine.monitor.runtimes
        assert runtimes["a"].observed.state.status is Status.UNKNOWN
        assert runtimes["b"].observed.state.status is Status.DOWN
        await engine.step(0.1)
        await engine.until(lambda: len(engine.outbox.stored) == 1, "b's RECOVERED stored")
        assert [(a.target, a.kind) for a in engine.outbox.stored] == [("b", AlertKind.RECOVERED)]
        assert engine.monitor.status(include_history=False)["targets"][0]["state"] == "up"
        await engine.monitor.stop()

    run(go)
    (discarded,) = engine.events_named("state_file_discarded")
    assert "'a' (since=1e+300 is not a Unix time" in discarded["reason"]
    assert "outage memory is lost" in discarded["reason"]
    assert len(list(state.glob("state.json.rejected-*"))) == 1


def test_a_reload_carries_what_was_seen_and_the_state_file_follows(tmp_path: Path) -> None:
    def entry(name: str, interval: float = 1.0, host: str | None = None) -> dict[str, object]:
        return {
            "name": name,
            "url": f"http://{host or name}.example/",
            "interval": interval,
            "failure_threshold": 3,
        }

    engine = Engine(targets_settings(tmp_path, toml_targets(entry("a"), entry("b"), entry("c"))))

    async def go() -> None:
        await engine.start()
        engine.checker.verdicts["a"] = "HTTP 500"
        for _ in range(2):
            await engine.step(1.0)
        before = engine.monitor.runtimes["a"].observed
        assert (before.state.status, before.checks_failed) == (Status.FAILING, 2)
        new = targets_settings(
            tmp_path, toml_targets(entry("a", interval=0.5), entry("c", host="elsewhere"), entry("d"))
        )
        plan = engine.monitor.reload(new)
        assert [rt.target.name for rt in plan.targets.added] == ["d"]
        assert [rt.target.name for rt in plan.targets.removed] == ["b"]
        assert [new_rt.target.name for _, new_rt in plan.targets.changed] == ["a", "c"]
        a, c = engine.monitor.runtimes["a"], engine.monitor.runtimes["c"]
        assert a.observed is before and a.target.interval == 0.5
        assert c.observed.checks_ok == 0 and c.observed.state.status is Status.UNKNOWN
        await engine.step(0.6)  # a (every 0.5 s now) fails a third time: DOWN
        await engine.until(lambda: len(engine.outbox.stored) == 1, "a's DOWN stored")
        assert engine.outbox.stored[0].failed_checks == 3

        def saved() -> dict[str, dict[str, object]] | None:
            path = tmp_path / "state" / "state.json"
            records: dict[str, dict[str, object]] = (
                json.loads(path.read_text())["targets"] if path.exists() else {}
            )
            return records if records.get("a", {}).get("status") == "down" else None

        await engine.until(lambda: saved() is not None, "the state saved after the DOWN")
        records = saved()
        assert records is not None and sorted(records) == ["a", "c", "d"]
        assert records["c"]["url"] == "http://elsewhere.example/"
        await engine.monitor.stop()

    run(go)
