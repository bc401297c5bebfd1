"""``reconcile``: what a reload does to the runtimes, tested as the pure function it is."""

from __future__ import annotations

import time

import pytest

from keepalive.engine.runtime import Observed, TargetRuntime, reconcile
from keepalive.state import Policy, Status, TargetState
from keepalive.targets import Target

NOW = 1_700_000_000.0


def target(name: str, url: str | None = None, **changes: object) -> Target:
    fields: dict[str, object] = {
        "name": name,
        "url": url or f"http://{name}.example/health",
        "interval": 5.0,
        "failure_threshold": 3,
        "success_threshold": 1,
        "timeout": 2.0,
    }
    fields.update(changes)
    return Target(**fields)  # type: ignore[arg-type]


def policy(t: Target, repeat: bool = True) -> Policy:
    return Policy(t.failure_threshold, t.success_threshold, repeat)


def running(*targets: Target) -> dict[str, TargetRuntime]:
    return {t.name: TargetRuntime(t, policy(t), Observed(TargetState(), NOW)) for t in targets}


def well_observed() -> Observed:
    """An Observed with every slot set to something no fresh one holds."""
    seen = Observed(TargetState(Status.DOWN, 1, 7, 0, NOW - 60, 2, "HTTP 503"), NOW - 3600)
    seen.history.add(NOW - 1, False, None)
    seen.last_check = NOW - 1
    seen.last_latency_ms = 12.5
    seen.last_ok = False
    seen.checks_ok = 41
    seen.checks_failed = 7
    seen.status_since = NOW - 60
    return seen


def test_an_unchanged_configuration_keeps_every_runtime_object() -> None:
    old = running(target("a"), target("b"))
    plan = reconcile(old, [target("a"), target("b")], policy, NOW)
    assert plan.kept == [old["a"], old["b"]]
    assert plan.runtimes["a"] is old["a"] and plan.runtimes["b"] is old["b"]
    assert (plan.added, plan.changed, plan.removed) == ([], [], [])
    assert plan.to_schedule() == [] and plan.to_retire() == []


def test_added_and_removed_targets() -> None:
    old = running(target("a"), target("gone"))
    plan = reconcile(old, [target("a"), target("new")], policy, NOW)
    assert [rt.target.name for rt in plan.added] == ["new"]
    assert plan.added[0].observed.state == TargetState()
    assert plan.removed == [old["gone"]]
    assert list(plan.runtimes) == ["a", "new"]
    assert plan.to_retire() == [old["gone"]]
    assert plan.to_schedule() == plan.added


def test_a_changed_target_on_the_same_url_carries_every_observed_field() -> None:
    old = running(target("a"))
    seen = well_observed()
    old["a"].observed = seen
    before = {slot: getattr(seen, slot) for slot in Observed.__slots__}
    plan = reconcile(old, [target("a", interval=1.0, timeout=0.5)], policy, NOW)
    ((was, now),) = plan.changed
    assert was is old["a"]
    assert now is not was and now.target.interval == 1.0
    # The very object: a field added to Observed later is carried without anyone copying it.
    assert now.observed is seen
    assert {slot: getattr(now.observed, slot) for slot in Observed.__slots__} == before
    assert now.view is None and not now.retired and now.task is None


def test_a_new_url_starts_the_target_afresh() -> None:
    old = running(target("a"))
    old["a"].observed = well_observed()
    plan = reconcile(old, [target("a", url="http://elsewhere.example/health")], policy, NOW)
    ((_, now),) = plan.changed
    assert now.observed is not old["a"].observed
    assert now.observed.state == TargetState()
    assert (now.observed.checks_ok, now.observed.checks_failed, now.observed.last_check) == (0, 0, None)


def test_a_changed_password_alone_is_the_same_endpoint() -> None:
    old = running(target("a", url="http://user:old@a.example/health"))
    seen = old["a"].observed
    plan = reconcile(old, [target("a", url="http://user:new@a.example/health")], policy, NOW)
    ((_, now),) = plan.changed
    assert now.observed is seen
    assert now.target.url == "http://user:new@a.example/health"  # checks use the new password


def test_a_changed_policy_alone_is_a_change() -> None:
    old = running(target("a"))
    plan = reconcile(old, [target("a")], lambda t: policy(t, repeat=False), NOW)
    ((was, now),) = plan.changed
    assert now.policy.repeat_alerts is False and now.observed is was.observed


def test_the_new_runtimes_follow_the_order_of_the_new_targets() -> None:
    old = running(target("a"), target("b"), target("c"))
    plan = reconcile(old, [target("c"), target("a", interval=9.0), target("d")], policy, NOW)
    assert list(plan.runtimes) == ["c", "a", "d"]
    assert plan.removed == [old["b"]]


def test_reconcile_does_not_touch_the_old_runtimes() -> None:
    old = running(target("a"), target("b"))
    reconcile(old, [target("a", interval=1.0)], policy, NOW)
    assert not old["a"].retired and not old["b"].retired
    assert list(old) == ["a", "b"]


@pytest.mark.parametrize("count", [10_000, 50_000])
def test_reconcile_cost_is_linear_and_is_printed(count: int) -> None:
    """Prints the loop time of a reload's reconcile; asserts the outcome, never the time (the
    machine is shared): README figures come from here."""
    targets = [target(f"t{i}") for i in range(count)]
    old = running(*targets)
    same = [target(f"t{i}") for i in range(count)]  # equal, new objects: as a re-read file gives
    started = time.perf_counter()
    plan = reconcile(old, same, policy, NOW)
    unchanged = time.perf_counter() - started
    assert len(plan.kept) == count
    one_percent = [target(f"t{i}", interval=7.0) if i % 100 == 0 else target(f"t{i}") for i in range(count)]
    started = time.perf_counter()
    plan = reconcile(old, one_percent, policy, NOW)
    changed = time.perf_counter() - started
    assert len(plan.changed) == count // 100
    print(
        f"\nreconcile {count} targets: unchanged {unchanged * 1000:.1f} ms, 1% changed {changed * 1000:.1f} ms"
    )
