"""The scheduler driven by a clock moved by hand: no real loop, no sleeping."""

from __future__ import annotations

import pytest

from keepalive.engine.scheduler import STARTUP_RAMP_RATE, TICK, Scheduler
from tests.fakes.clock import ManualTimers


class Item:
    def __init__(self, name: str, interval: float = 1.0, due: float = 0.0) -> None:
        self.name = name
        self.interval = interval
        self.next_due = due
        self.retired = False

    def __repr__(self) -> str:
        return self.name


class Recorder:
    """The scheduler's ``start``: what started, at which clock time."""

    def __init__(self, timers: ManualTimers) -> None:
        self.timers = timers
        self.started: list[tuple[float, str]] = []

    def __call__(self, item: Item) -> None:
        self.started.append((self.timers.time(), item.name))

    def names(self) -> list[str]:
        return [name for _, name in self.started]


def make(start: float = 1000.0) -> tuple[ManualTimers, Recorder, Scheduler[Item]]:
    timers = ManualTimers(start)
    recorder = Recorder(timers)
    return timers, recorder, Scheduler(timers, recorder)


def test_a_check_due_between_ticks_starts_on_the_next_tick() -> None:
    timers, started, scheduler = make()
    scheduler.plan(Item("a", due=1000.01))
    assert timers.pending == [pytest.approx(1000.0 + TICK)]
    timers.advance(TICK - 0.011)
    assert started.started == []
    timers.advance(0.011 + 1e-9)  # the grid point is TICK's multiple in floating point
    ((at, name),) = started.started
    assert name == "a"
    assert at == pytest.approx(1000.0 + TICK)


def test_checks_due_within_one_tick_start_in_one_pass_of_one_timer() -> None:
    timers, started, scheduler = make()
    for i in range(100):
        scheduler.plan(Item(f"t{i}", due=1000.0001 + i * (TICK - 0.001) / 100))
    assert len(timers.pending) == 1
    timers.advance(TICK + 1e-9)
    assert len(started.started) == 100
    assert len({at for at, _ in started.started}) == 1  # every one in the same wake-up
    assert timers.pending == []


def test_an_earlier_check_moves_the_single_timer_forward() -> None:
    timers, started, scheduler = make()
    scheduler.plan(Item("late", due=1001.0))
    scheduler.plan(Item("early", due=1000.5))
    assert timers.pending == [pytest.approx(1000.5)]
    timers.advance(0.5)
    assert started.names() == ["early"]
    assert timers.pending == [pytest.approx(1001.0)]  # re-armed for the rest
    timers.advance(0.5)
    assert started.names() == ["early", "late"]


def test_a_later_check_leaves_the_timer_alone() -> None:
    timers, _, scheduler = make()
    scheduler.plan(Item("early", due=1000.5))
    scheduler.plan(Item("late", due=1002.0))
    assert timers.pending == [pytest.approx(1000.5)]
    assert timers.armed == 1


def test_a_retired_item_is_dropped_when_it_comes_due() -> None:
    timers, started, scheduler = make()
    gone, kept = Item("gone", due=1000.1), Item("kept", due=1000.1)
    scheduler.plan(gone)
    scheduler.plan(kept)
    gone.retired = True
    timers.advance(1.0)
    assert started.names() == ["kept"]
    assert len(scheduler) == 0


def test_after_a_check_the_item_moves_one_interval_on() -> None:
    timers, started, scheduler = make()
    item = Item("a", interval=2.0, due=1000.0)
    timers.advance(0.3)  # the check took a while
    assert scheduler.advance(item) == 0
    assert item.next_due == 1002.0  # on its grid, not 2 s after the check ended
    assert scheduler.missed == 0
    timers.advance(1.7)
    assert started.names() == ["a"]


def test_a_check_more_than_an_interval_late_skips_the_lost_slots_and_counts_them() -> None:
    timers, _, scheduler = make()
    item = Item("a", interval=1.0, due=1000.0)
    timers.advance(3.5)
    assert scheduler.advance(item) == 2
    assert item.next_due == 1003.0
    assert scheduler.missed == 2


def test_the_first_round_is_spread_over_the_start_up_ramp() -> None:
    timers, started, scheduler = make()
    count = 400
    items = [Item(f"t{i}", interval=10.0) for i in range(count)]
    scheduler.spread(items)
    ramp = count / STARTUP_RAMP_RATE  # 2 s, shorter than the interval
    assert items[0].next_due == 1000.0
    assert items[-1].next_due == pytest.approx(1000.0 + ramp * (count - 1) / count)
    timers.advance(1.0)
    assert len(started.started) == pytest.approx(count / 2, abs=count * TICK / ramp + 1)
    timers.advance(1.0)
    assert len(started.started) == count


def test_the_ramp_never_spreads_beyond_one_interval() -> None:
    _, _, scheduler = make()
    items = [Item(f"t{i}", interval=0.5) for i in range(1000)]
    scheduler.spread(items)
    assert max(i.next_due for i in items) < 1000.5


def test_a_failing_start_does_not_end_the_schedule() -> None:
    timers = ManualTimers()
    started: list[str] = []

    def start(item: Item) -> None:
        if item.name == "bad":
            raise RuntimeError("a bug")
        started.append(item.name)

    scheduler = Scheduler(timers, start)
    scheduler.plan(Item("bad", due=1000.0))
    scheduler.plan(Item("good", due=1000.0))
    with pytest.raises(RuntimeError):
        timers.advance(TICK)
    assert timers.pending != []  # re-armed despite the error
    timers.advance(TICK)
    assert started == ["good"]


def test_clear_cancels_the_timer_and_forgets_every_item() -> None:
    timers, started, scheduler = make()
    scheduler.plan(Item("a", due=1000.1))
    scheduler.clear()
    assert timers.pending == [] and len(scheduler) == 0
    timers.advance(10.0)
    assert started.started == []


def test_spreading_many_at_once_drops_retired_entries_and_keeps_the_order() -> None:
    timers, started, scheduler = make()
    old = [Item(f"old{i}", due=1000.5 + i) for i in range(10)]
    for item in old:
        scheduler.plan(item)
    for item in old[::2]:
        item.retired = True  # replaced by a reload
    new = [Item(f"new{i}", interval=60.0) for i in range(100)]
    scheduler.spread(new)  # many next to the heap: the bulk path
    assert len(scheduler) == 5 + 100
    timers.advance(20.0)
    assert len(started.started) == 105
    assert [at for at, _ in started.started] == sorted(at for at, _ in started.started)
    assert not any(name in started.names() for name in ("old0", "old2", "old4", "old6", "old8"))


def test_spreading_a_few_pushes_them_into_the_heap() -> None:
    timers, started, scheduler = make()
    for i in range(100):
        scheduler.plan(Item(f"t{i}", due=1001.0 + i / 100))
    scheduler.spread([Item("late-comer", interval=60.0)])
    assert len(scheduler) == 101
    timers.advance(TICK + 1e-9)
    assert started.names() == ["late-comer"]
