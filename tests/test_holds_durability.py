"""What a kill -9 finds on disk around a held DOWN (SPEC 13, SPEC 5: nothing lost).

A restart trusts state.json's "announced" and holds.json's pending DOWN together, so their
order on disk matters: the held DOWN must be in holds.json before state.json says the outage
was announced, and a DOWN released from a hold must be in the outbox before holds.json forgets
it. Each test looks at the files at the moment of the write that could otherwise run ahead."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from keepalive.alerts import Alert, AlertKind
from keepalive.policy.runner import Quiet
from tests.fakes.engine import Engine, MemoryOutbox, run, targets_settings, toml_targets


def quiet_engine(tmp_path: Path) -> tuple[Engine, Quiet]:
    entry = {"name": "db-1", "url": "http://db.example/health", "interval": 1.0, "failure_threshold": 2}
    engine = Engine(targets_settings(tmp_path, toml_targets(entry), REPEAT_ALERTS="false"))
    quiet = Quiet(engine.monitor)  # as engine/app.py wires it
    engine.monitor.announcer.policy = quiet.holds
    return engine, quiet


def on_disk(path: Path) -> dict[str, Any] | None:
    try:
        loaded: dict[str, Any] = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    return loaded


def test_a_held_down_is_in_the_holds_file_before_the_state_says_announced(tmp_path: Path) -> None:
    engine, quiet = quiet_engine(tmp_path)
    state_dir = tmp_path / "state"
    # For each state save that says db-1 is DOWN: the pending DOWNs holds.json held then.
    seen: list[list[str]] = []

    def watch() -> None:
        state = on_disk(state_dir / "state.json")
        if state is not None and state["targets"]["db-1"]["status"] == "down":
            holds = on_disk(state_dir / "holds.json")
            seen.append(sorted(holds["pending"]) if holds is not None else [])

    engine.store.watch = watch

    async def go() -> None:
        await engine.start()
        quiet.book.create("db-*", "2h", "disk swap", "alice")
        engine.checker.verdicts["db-1"] = "HTTP 503"
        for _ in range(3):
            await engine.step(1.0)
        assert [e["target"] for e in engine.events_named("alert_held")] == ["db-1"]
        # The once-a-second hold tick (Quiet.run) is not running: only the order of the
        # persister's own writes is looked at.
        await engine.until(lambda: bool(seen), "a state save with db-1 down")
        await engine.monitor.stop()

    run(go)
    assert engine.outbox.stored == []
    assert seen and all(pending == ["db-1"] for pending in seen), seen


def test_a_released_down_stays_in_the_holds_file_until_the_outbox_has_it(tmp_path: Path) -> None:
    engine, quiet = quiet_engine(tmp_path)
    holds_file = tmp_path / "state" / "holds.json"

    async def go() -> None:
        await engine.start()
        silence = quiet.book.create("db-*", "2h", "disk swap", "alice")
        engine.checker.verdicts["db-1"] = "HTTP 503"
        for _ in range(3):
            await engine.step(1.0)
        await quiet.save(force=True)
        document = on_disk(holds_file)
        assert document is not None and list(document["pending"]) == ["db-1"]
        engine.outbox.broken.set()  # the disk is full: the released DOWN cannot be stored
        assert quiet.book.remove(silence.id) is not None
        (released,) = quiet.holds.tick()
        assert released.kind is AlertKind.DOWN
        await engine.until(lambda: engine.monitor.persister.storing.since is not None, "a failed store")
        await quiet.save()  # the tick's save: it must not drop the DOWN the outbox lacks
        document = on_disk(holds_file)
        assert document is not None and list(document["pending"]) == ["db-1"]
        engine.outbox.broken.clear()
        await engine.until(lambda: len(engine.outbox.stored) == 1, "the released DOWN stored")
        # The persister writes the holds file right after storing it (before the state).
        await engine.until(
            lambda: (on_disk(holds_file) or {}).get("pending") == {}, "the holds file without it"
        )
        await engine.monitor.stop()

    run(go)
    assert [(a.kind, a.target) for a in engine.outbox.stored] == [(AlertKind.DOWN, "db-1")]


class SlowOutbox(MemoryOutbox):
    """The first put() waits for ``release`` (a put in its thread when a stop comes)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self._first = True

    def put(self, alerts: Sequence[Alert], routes: Sequence[tuple[str, str]]) -> int:
        if self._first:
            self._first = False
            self.entered.set()
            self.release.wait(30)
        return super().put([a for a in alerts if a not in self.stored], routes)


def test_a_stop_during_a_put_stores_the_alerts_again_before_saving_the_state(tmp_path: Path) -> None:
    entry = {"name": "api", "url": "http://api.example/health", "interval": 1.0, "failure_threshold": 2}
    outbox = SlowOutbox()
    engine = Engine(targets_settings(tmp_path, toml_targets(entry), REPEAT_ALERTS="false"), outbox=outbox)
    # At each state save that says api is DOWN: did the outbox hold its DOWN?
    seen: list[bool] = []

    def watch() -> None:
        state = on_disk(tmp_path / "state" / "state.json")
        if state is not None and state["targets"]["api"]["status"] == "down":
            seen.append(any(a.kind is AlertKind.DOWN for a in outbox.stored))

    engine.store.watch = watch

    async def go() -> None:
        await engine.start()
        engine.checker.verdicts["api"] = "HTTP 503"
        for _ in range(3):
            await engine.step(1.0)
        await engine.until(outbox.entered.is_set, "the DOWN's put under way")
        await engine.monitor.stop()  # cancels the persister while its put waits in the thread
        outbox.release.set()

    try:
        run(go)
    finally:
        outbox.release.set()
    assert seen == [True], seen
    assert [a.kind for a in outbox.stored] == [AlertKind.DOWN]
