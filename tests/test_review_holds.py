"""Dependencies across replicas (SPEC 13 x SPEC 17): a parent this monitor does not check."""

from __future__ import annotations

from pathlib import Path

from tests.test_policy_holds import World, down, target


def test_a_child_whose_parent_another_replica_checks_is_not_held_for_ever(tmp_path: Path) -> None:
    world = World(tmp_path)
    app = target("app", depends_on=("router",))
    # This replica's share holds "app" but not "router": no state and no check of it, ever.
    holds = world.holds(None, (app,))
    assert holds.hold(down(world, "app", world.now), app) is None  # notified now, not held
    assert holds.is_held("app") is False
    assert holds.pending == {}


def test_a_child_with_its_parent_in_this_share_is_still_held(tmp_path: Path) -> None:
    world = World(tmp_path)
    app = target("app", depends_on=("router",))
    holds = world.holds(None, (target("router"), app))
    down(world, "router", world.now - 60)
    assert holds.hold(down(world, "app", world.now), app) == "depends on 'router' (down)"


def test_an_unreadable_holds_file_is_set_aside_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "holds.json").write_text('{"version": 1, "pending": {"app": {"kind": "sideways"}}}')
    world = World(tmp_path)
    holds = world.holds(None, (target("app"),))
    (problem,) = holds.problems
    (aside,) = tmp_path.glob("holds.json.corrupt-*")
    assert problem == (
        f"{tmp_path / 'holds.json'} is unreadable (ValueError): held alerts before this start are lost; "
        f"set aside as {aside.name}"
    )
    assert aside.read_text() == '{"version": 1, "pending": {"app": {"kind": "sideways"}}}'
    assert not (tmp_path / "holds.json").exists()
