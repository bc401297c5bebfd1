"""The hold policy (SPEC 13) fed by hand: silences, windows and parents, against what was notified.

Each test drives ``Holds`` the way the announcer and the once-a-second tick do, with a clock it
moves and the targets' states set directly; what reaches ``queue`` is what would be delivered."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from keepalive.alerts import Alert, AlertKind, alert_id
from keepalive.errors import ConfigError
from keepalive.policy.dependencies import check_graph
from keepalive.policy.holds import Holds
from keepalive.policy.maintenance import read_window
from keepalive.policy.silences import SilenceBook, SilenceError, read_request
from keepalive.state import Status, TargetState
from keepalive.targets import Target

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday


@dataclass
class World:
    """Targets' states, a clock, and what the policy queued and reported."""

    tmp: Path
    now: float = T0
    states: dict[str, TargetState] = field(default_factory=dict)
    checked: dict[str, float] = field(default_factory=dict)
    queued: list[Alert] = field(default_factory=list)
    reports: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rechecked: list[str] = field(default_factory=list)  # certificates to look at again

    def clock(self) -> float:
        return self.now

    def report(self, event: str, message: str, *args: Any, **fields: Any) -> None:
        self.reports.append((event, fields))

    def book(self) -> SilenceBook:
        return SilenceBook(self.tmp, max_silence=7 * 86400, clock=self.clock)

    def holds(
        self, book: SilenceBook | None = None, targets: tuple[Target, ...] = (), windows: Any = ()
    ) -> Holds:
        holds = Holds(
            book or self.book(),
            self.tmp,
            state_of=self.states.get,
            checked_at=self.checked.get,
            recheck_cert=self.rechecked.append,
            queue=self.queued.append,
            report=self.report,
            clock=self.clock,
        )
        holds.configure(targets, windows)
        return holds


def target(name: str, depends_on: tuple[str, ...] = ()) -> Target:
    return Target(name, "http://127.0.0.1:9/health", 10.0, 2, 1, 2.0, depends_on=depends_on)


def down(world: World, name: str, since: float, sequence: int = 0) -> Alert:
    """The target is down since ``since`` and the state machine raised DOWN number ``sequence``."""
    world.states[name] = TargetState(Status.DOWN, 0, 2 * (sequence + 1), 0, since, sequence + 1, "HTTP 503")
    world.checked[name] = world.now
    return Alert(
        id=alert_id(name, since, AlertKind.DOWN, sequence),
        kind=AlertKind.DOWN,
        target=name,
        url="http://127.0.0.1:9/health",
        reason="HTTP 503",
        since=since,
        at=world.now,
        failed_checks=2 * (sequence + 1),
        downtime=None,
        host="mon-1",
    )


def recovered(world: World, name: str, since: float) -> Alert:
    world.states[name] = TargetState(Status.UP)
    world.checked[name] = world.now
    return Alert(
        id=alert_id(name, since, AlertKind.RECOVERED, 0),
        kind=AlertKind.RECOVERED,
        target=name,
        url="http://127.0.0.1:9/health",
        reason="HTTP 503",
        since=since,
        at=world.now,
        failed_checks=2,
        downtime=world.now - since,
        host="mon-1",
    )


def silence(book: SilenceBook, globs: Any, duration: str = "2h", comment: str = "disk swap") -> str:
    return book.create(globs, duration, comment, "alice").id


def test_still_down_when_the_silence_ends_gets_exactly_one_down_then(tmp_path: Path) -> None:
    world = World(tmp_path)
    book = world.book()
    holds = world.holds(book, (target("db-1"),))
    silence(book, "db-*")
    since = world.now
    why = holds.hold(down(world, "db-1", since), target("db-1"))
    assert why is not None and why.startswith("silence ") and "(disk swap) by alice until" in why
    world.now += 60
    assert holds.hold(down(world, "db-1", since, sequence=1), target("db-1")) is not None  # a repeat, held
    assert holds.tick() == [] and world.queued == []
    world.now += 2 * 3600  # the silence expires on its own
    (released,) = holds.tick()
    assert (released.kind, released.target, released.failed_checks, released.at) == (
        AlertKind.DOWN,
        "db-1",
        4,
        world.now,
    )
    assert released.id == alert_id("db-1", since, AlertKind.DOWN, 1)
    assert holds.tick() == [] and world.queued == [released]
    assert [e for e, _ in world.reports] == ["alert_released"]
    # Its recovery is then a resolution of a notified DOWN: sent.
    assert holds.hold(recovered(world, "db-1", since), target("db-1")) is None


def test_down_and_back_inside_the_silence_sends_nothing_ever(tmp_path: Path) -> None:
    world = World(tmp_path)
    book = world.book()
    holds = world.holds(book, (target("db-1"),))
    silence(book, "db-1")
    since = world.now
    assert holds.hold(down(world, "db-1", since), target("db-1")) is not None
    world.now += 300
    assert holds.hold(recovered(world, "db-1", since), target("db-1")) == (
        "down and back inside the hold: its DOWN was never notified"
    )
    world.now += 3 * 3600
    assert holds.tick() == []
    assert world.queued == []


def test_a_notified_down_recovers_at_once_even_inside_a_silence_and_repeats_are_not_resent(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    book = world.book()
    holds = world.holds(book, (target("db-1"),))
    since = world.now
    assert holds.hold(down(world, "db-1", since), target("db-1")) is None  # notified
    silence(book, "*")
    world.now += 60
    why = holds.hold(down(world, "db-1", since, sequence=1), target("db-1"))
    assert why is not None and why.endswith("(a repeat: this outage was notified)")
    world.now += 60
    assert holds.hold(recovered(world, "db-1", since), target("db-1")) is None  # never held
    world.now += 3 * 3600
    assert holds.tick() == []


def test_removing_a_silence_releases_at_the_next_tick(tmp_path: Path) -> None:
    world = World(tmp_path)
    book = world.book()
    holds = world.holds(book, (target("db-1"),))
    silence_id = silence(book, ["db-1", "web"])
    assert holds.hold(down(world, "db-1", world.now), target("db-1")) is not None
    assert holds.is_held("db-1")
    removed = book.remove(silence_id[:8])
    assert removed is not None and removed.id == silence_id
    assert [a.target for a in holds.tick()] == ["db-1"]
    assert not holds.is_held("db-1")


def test_a_restart_in_the_middle_of_a_hold_keeps_what_was_held_and_what_was_notified(tmp_path: Path) -> None:
    world = World(tmp_path)
    book = world.book()
    holds = world.holds(book, (target("db-1"), target("db-2")))
    silence(book, "db-*", duration="1h")
    assert holds.hold(down(world, "db-1", T0 - 600), target("db-1")) is not None
    world.states["db-2"] = TargetState(Status.DOWN, 0, 2, 0, T0 - 900, 1, "timeout")
    holds.notified["db-2"] = T0 - 900  # its DOWN went out before the silence
    holds.save(holds.document())

    world.now += 600  # the process is restarted
    again = world.holds(world.book(), (target("db-1"), target("db-2")))
    assert set(again.pending) == {"db-1"} and again.notified == {"db-2": T0 - 900}
    assert again.is_held("db-1")
    world.now += 3600
    assert [a.target for a in again.tick()] == ["db-1"]
    # db-2's recovery after the restart is a resolution of a notified DOWN: sent.
    assert again.hold(recovered(world, "db-2", T0 - 900), target("db-2")) is None


def test_a_maintenance_window_holds_only_what_it_covers_and_releases_when_it_closes(tmp_path: Path) -> None:
    world = World(tmp_path)
    window = read_window(
        {"name": "nightly-backup", "targets": ["db"], "start": "00:00", "duration": "45m", "timezone": "UTC"},
        1,
        "t.toml",
    )
    holds = world.holds(None, (target("db"), target("web")), (window,))
    assert holds.hold(down(world, "db", world.now), target("db")) == "maintenance nightly-backup"
    assert holds.hold(down(world, "web", world.now), target("web")) is None
    world.now += 44 * 60
    assert holds.tick() == []
    world.now += 60
    assert [a.target for a in holds.tick()] == ["db"]


def expiring(world: World, name: str, expires_at: float, days: int) -> Alert:
    """The certificate seen on ``name`` expires at ``expires_at``, below ``days`` days."""
    return Alert(
        id=alert_id(name, expires_at, AlertKind.EXPIRING, days),
        kind=AlertKind.EXPIRING,
        target=name,
        url="https://127.0.0.1:9/health",
        reason=f"TLS certificate expires in 13 d, below {days} days",
        since=expires_at,
        at=world.now,
        failed_checks=0,
        downtime=None,
        host="mon-1",
    )


def test_an_expiring_certificate_is_held_by_a_silence_and_looked_at_again_when_it_ends(
    tmp_path: Path,
) -> None:
    """Held, it is not sent as it was when the quiet ends ("expires in 13 d" may be stale, the
    certificate renewed): the engine is asked to look at the certificate again, and a fresh
    EXPIRING comes from that look if it still runs out."""
    world = World(tmp_path)
    book = world.book()
    holds = world.holds(book, (target("web"),))
    silence(book, "web", duration="1h")
    expires = T0 + 13 * 86400
    why = holds.hold(expiring(world, "web", expires, 14), target("web"))
    assert why is not None and why.startswith("silence ")
    world.now += 60
    assert holds.hold(expiring(world, "web", expires, 3), target("web")) is not None
    assert holds.tick() == [] and world.rechecked == []

    holds.save(holds.document())  # a restart in the middle keeps it
    world.now += 3600
    again = world.holds(world.book(), (target("web"),))
    assert again.tick() == [] and world.queued == []
    assert world.rechecked == ["web"]
    assert world.reports == [
        (
            "held_alert_dropped",
            {
                "target": "web",
                "alert_id": alert_id("web", expires, AlertKind.EXPIRING, 3),
                "why": "the quiet ended: the certificate is looked at again, and an EXPIRING follows "
                "if it still runs out",
            },
        )
    ]
    assert again.tick() == [] and world.rechecked == ["web"]  # once
    # The fresh EXPIRING of that look, the quiet over, is sent.
    assert again.hold(expiring(world, "web", expires, 3), target("web")) is None


def test_an_expiring_certificate_held_by_a_window_is_looked_at_again_when_it_closes(tmp_path: Path) -> None:
    world = World(tmp_path)
    window = read_window(
        {"name": "renewal", "targets": ["web"], "start": "00:00", "duration": "1h", "timezone": "UTC"},
        1,
        "t.toml",
    )
    holds = world.holds(None, (target("web"),), (window,))
    assert holds.hold(expiring(world, "web", T0 + 10 * 86400, 14), target("web")) == "maintenance renewal"
    world.now += 59 * 60
    assert holds.tick() == [] and world.rechecked == []
    world.now += 60
    assert holds.tick() == [] and world.queued == [] and world.rechecked == ["web"]


def test_a_parent_being_down_does_not_hold_a_childs_expiring_certificate(tmp_path: Path) -> None:
    world = World(tmp_path)
    holds = world.holds(None, (target("db"), target("api", depends_on=("db",))))
    down(world, "db", world.now)
    down_alert = down(world, "api", world.now)
    assert holds.hold(down_alert, target("api")) is not None  # its DOWN waits for the parent
    assert holds.hold(expiring(world, "api", T0 + 5 * 86400, 14), target("api")) is None


def test_a_child_is_held_only_while_all_its_parents_are_down(tmp_path: Path) -> None:
    world = World(tmp_path)
    app = target("app", depends_on=("uplink-a", "uplink-b"))
    holds = world.holds(None, (target("uplink-a"), target("uplink-b"), app))
    world.states["uplink-a"] = TargetState(Status.DOWN, 0, 2, 0, T0 - 60, 1, "timeout")
    world.states["uplink-b"] = TargetState(Status.UP)
    world.checked.update({"uplink-a": T0, "uplink-b": T0})
    assert holds.hold(down(world, "app", T0 - 30), app) is None  # one uplink is up: its own outage


def test_a_child_held_by_its_parent_gets_its_down_when_the_parent_recovers_and_the_parent_lists_it(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    app = target("app", depends_on=("router",))
    holds = world.holds(None, (target("router"), app))
    router_down = down(world, "router", T0 - 60)
    app_down = down(world, "app", T0 - 50)
    assert holds.hold(app_down, app) == "depends on 'router' (down)"
    assert holds.hold(router_down, target("router")) is None
    annotated = holds.annotate(router_down, target("router"))
    assert annotated.reason == "HTTP 503; dependents failing too: app"
    assert annotated.id == router_down.id
    world.now += 120
    assert holds.tick() == []
    recovered(world, "router", T0 - 60)
    assert [a.target for a in holds.tick()] == ["app"]


def test_a_child_failing_in_the_same_instant_as_its_parent_waits_for_the_parents_next_check(
    tmp_path: Path,
) -> None:
    world = World(tmp_path)
    app = target("app", depends_on=("router",))
    holds = world.holds(None, (target("router"), app))
    world.states["router"] = TargetState(Status.UP)
    world.checked["router"] = T0 - 5  # last heard before the child began failing
    assert holds.hold(down(world, "app", T0), app) == "depends on 'router' (waiting for its next check)"
    world.now += 10
    world.checked["router"] = world.now  # it has spoken: up, so the outage is the child's own
    assert [a.target for a in holds.tick()] == ["app"]


def test_unknown_names_and_cycles_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="target 'app': depends_on names 'ruoter', which is not a target"):
        check_graph({"app": ("ruoter",), "router": ()}, "t.toml")
    with pytest.raises(ConfigError, match=r"depends_on has a cycle: a -> b -> c -> a"):
        check_graph({"a": ("b",), "b": ("c",), "c": ("a",)}, "t.toml")
    check_graph({f"t{i}": (f"t{i + 1}",) for i in range(50_000)} | {"t50000": ()}, "t.toml")  # no recursion


def test_downtime_is_split_into_maintenance_and_dependency(tmp_path: Path) -> None:
    world = World(tmp_path)
    window = read_window(
        {"name": "w", "targets": "db", "start": "00:00", "duration": "1h", "timezone": "UTC"}, 1, "t"
    )
    app = target("app", depends_on=("router",))
    holds = world.holds(None, (target("db"), target("router"), app), (window,))
    for name in ("db", "router", "app"):
        world.states[name] = TargetState(Status.DOWN, 0, 2, 0, T0, 1, "timeout")
    holds.count_downtime(world.states.items(), 30.0)
    world.now += 2 * 3600  # the window has closed
    holds.count_downtime(world.states.items(), 10.0)
    figures = {n: (d.total, d.maintenance, d.dependency) for n, d in holds.downtime.items()}
    assert figures == {"db": (40.0, 30.0, 0.0), "router": (40.0, 0.0, 0.0), "app": (40.0, 0.0, 40.0)}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"targets": "db-*"},
            "expected exactly one of duration (like 2h) or ends_at (ISO-8601): a silence must end",
        ),
        ({"targets": "db-*", "duration": "8d"}, "the silence would last 8d: at most MAX_SILENCE=7d"),
        (
            {"targets": "db-*", "duration": "2x"},
            "duration='2x' is not a duration like 90s, 45m, 2h, 1d or 1h30m",
        ),
        ({"targets": "db-*", "ends_at": "2025-01-01T00:00:00Z"}, "it is in the past"),
        ({"targets": "db-*", "ends_at": "2026-01-01T03:00:00"}, "it needs a zone"),
        ({"targets": [], "duration": "1h"}, "targets=[] is invalid"),
        ({"duration": "1h"}, "targets is missing"),
        ({"targets": "x", "duration": "1h", "who": "me"}, "unknown field 'who'"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_a_bad_silence_request_says_what_is_wrong_in_one_line(body: Any, message: str) -> None:
    with pytest.raises(SilenceError) as caught:
        read_request(body, T0, 7 * 86400)
    assert message in str(caught.value)


def test_silences_persist_expire_on_their_own_and_a_bad_file_is_set_aside(tmp_path: Path) -> None:
    world = World(tmp_path)
    book = world.book()
    first = book.add(read_request({"targets": "db-*", "ends_at": "2026-01-01T02:00:00+01:00"}, T0, 7 * 86400))
    assert first.ends_at == T0 + 3600
    book.create("web", "3h", "deploy", "bob")
    assert [s.targets for s in world.book().all()] == [("db-*",), ("web",)]  # read back from disk
    world.now += 3601
    assert [s.targets for s in world.book().all()] == [("web",)]
    assert book.covering("db-1") is None and book.covering("WEB") is not None
    (tmp_path / "silences.json").write_text("{not json")
    broken = world.book()
    assert broken.all() == () and "is not a silence file" in broken.problems[0]
    assert [
        p.name.startswith("silences.json.corrupt-") for p in tmp_path.iterdir() if "corrupt" in p.name
    ] == [True]


def test_the_snapshot_batch_agrees_with_asking_one_target_at_a_time(tmp_path: Path) -> None:
    world = World(tmp_path)
    book = world.book()
    window = read_window(
        {"name": "w", "targets": "web-*", "start": "00:00", "duration": "1h", "timezone": "UTC"}, 1, "t"
    )
    names = ["db-1", "db-2", "web-1", "web-2", "router", "app", "other"]
    targets = tuple(target(n, depends_on=("router",) if n == "app" else ()) for n in names)
    holds = world.holds(book, targets, (window,))
    silence(book, "db-*", duration="1h")
    book.create("db-2", "3h", "longer", "bob")
    for name in ("db-1", "router", "app", "other"):
        down(world, name, T0 - 100)
    world.states.update({"db-2": TargetState(Status.UP), "web-1": TargetState(Status.UP)})
    holds.hold(down(world, "other", T0 - 100), target("other"))  # notified: nothing to show
    one_by_one = {n: v for n in names if (v := holds.view(n, world.states.get(n))) is not None}
    batch = holds.views((n, world.states.get(n)) for n in names)
    assert {n: (v.why, v.until, v.pending) for n, v in batch.items()} == {
        n: (v.why, v.until, v.pending) for n, v in one_by_one.items()
    }
    assert {n: v.why.split(" (")[0] if v.why else None for n, v in batch.items()} == {
        "db-1": f"silence {book.all()[0].short_id}",
        "db-2": f"silence {book.all()[1].short_id}",
        "web-1": "maintenance w",
        "web-2": "maintenance w",
        "app": "depends on 'router'",
    }


def test_the_status_script_marks_a_held_target() -> None:
    from keepalive.status_report import rows_from_api

    rows = rows_from_api(
        {
            "targets": [
                {
                    "name": "db-1",
                    "state": "down",
                    "silenced_by": "maintenance nightly",
                    "last_reason": "HTTP 503",
                },
                {"name": "web", "state": "up", "silenced_by": None},
            ]
        }
    )
    assert [(r[0], r[1]) for r in rows] == [("db-1", "down (held)"), ("web", "up")]
