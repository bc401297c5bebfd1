"""What a SIGHUP costs the event loop at 10,000 and 50,000 targets (issue 9, defect 3).

Prints the figures (README and report come from here) and asserts outcomes, never times: the
machine is shared. Reading the file and matching the targets run in worker threads
(keepalive.engine.app.MonitorApp.reload); only ``apply_reload`` runs on the loop.

    .venv/bin/python -m pytest -q -s -p no:cacheprovider tests/test_engine_reload_cost.py
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from keepalive.config import load_settings
from tests.fakes.engine import Engine, run, targets_settings


def targets_file(count: int, changed_every: int = 0) -> str:
    lines = []
    for i in range(count):
        interval = 7 if changed_every and i % changed_every == 0 else 30
        lines.append(f'[[targets]]\nname = "t{i}"\nurl = "http://10.0.{i // 250}.{i % 250}:8080/health"\n')
        lines.append(f"interval = {interval}\n")
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.parametrize("count", [10_000, 50_000])
def test_a_reload_costs_the_loop_only_what_changed(tmp_path: Path, count: int) -> None:
    settings = targets_settings(tmp_path, targets_file(count))
    engine = Engine(settings)
    environ = {
        "MONITOR_ENV_FILE": "",
        "MONITOR_TARGETS_FILE": str(tmp_path / "targets.toml"),
        "MONITOR_HTTP_PORT": "0",
        "MONITOR_STATE_DIR": str(tmp_path / "state"),
        "MONITOR_EVENTS_FILE": str(tmp_path / "events.jsonl"),
    }
    figures: dict[str, float] = {}
    clock = time.perf_counter

    async def go() -> None:
        await engine.start()
        monitor = engine.monitor
        # Each reload against the one before: the last changes all but the 1 % changed already.
        steps = (
            ("unchanged", 0, 0),
            ("1% changed", 100, count // 100),
            ("99% changed", 1, count - count // 100),
        )
        for label, every, expected in steps:
            (tmp_path / "targets.toml").write_text(targets_file(count, every))
            started = clock()
            new = load_settings(environ, root=tmp_path)
            figures[f"{label}: read+parse (thread)"] = clock() - started
            started = clock()
            plan = monitor.plan_reload(new)
            figures[f"{label}: match (thread)"] = clock() - started
            started = clock()
            monitor.apply_reload(plan)
            figures[f"{label}: apply (LOOP)"] = clock() - started
            assert len(monitor.runtimes) == count
            assert len(plan.targets.changed) == expected
        started = clock()
        monitor._records()
        figures["state records, first save (LOOP)"] = clock() - started
        for rt in list(monitor.runtimes.values())[: count // 30]:  # one second of checks at 30 s
            monitor._unsaved[rt.target.name] = rt
        started = clock()
        monitor._records()
        figures["state records, next save (LOOP)"] = clock() - started
        for label in ("first", "next"):
            for history in (False, True):
                started = clock()
                monitor._build_snapshot(history)
                figures[f"snapshot{' with history' * history}, {label} (LOOP)"] = clock() - started
        await monitor.stop()

    run(go)
    print(f"\nSIGHUP at {count} targets, ms:")
    for name, ms in figures.items():
        print(f"  {name:<36} {ms * 1000:8.1f}")
