"""Target states on disk: atomic writes, every field validated on load, bad records and corrupt
files set aside under unique names, the rest kept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from keepalive.engine.statestore import StateStore, reserve_aside
from keepalive.state import Status, TargetState

DOWN = {
    "url": "http://db.example/health",
    "status": "down",
    "failures": 0,
    "outage_failures": 3,
    "successes": 0,
    "since": 1_700_000_000.5,
    "alerts_raised": 1,
    "last_reason": "HTTP 500",
}


def write(tmp_path: Path, targets: Any) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"version": 1, "targets": targets}))


def test_saved_records_load_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save({"db": DOWN})
    loaded = store.load()
    assert loaded.problems == []
    saved = loaded.targets["db"]
    assert saved.url == "http://db.example/health"
    assert saved.state == TargetState(Status.DOWN, 0, 3, 0, 1_700_000_000.5, 1, "HTTP 500")
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_a_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    loaded = StateStore(tmp_path / "nothing").load()
    assert (loaded.targets, loaded.problems) == ({}, [])


def test_a_corrupt_file_is_moved_aside_saying_every_outage_memory_is_lost(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"targets": [1, 2')
    loaded = StateStore(tmp_path).load()
    assert loaded.targets == {}
    (problem,) = loaded.problems
    assert "is corrupt" in problem and "every target's outage memory is lost" in problem
    assert not (tmp_path / "state.json").exists()
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 1


def test_a_document_of_the_wrong_shape_counts_as_corrupt(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('["not", "a", "state"]')
    loaded = StateStore(tmp_path).load()
    assert loaded.targets == {}
    assert len(loaded.problems) == 1 and "not a state document" in loaded.problems[0]


def test_a_deeply_nested_document_is_corrupt_not_a_recursion_error(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("[" * 100_000 + "]" * 100_000)
    loaded = StateStore(tmp_path).load()
    assert loaded.targets == {} and "nested too deeply" in loaded.problems[0]


def test_two_corrupt_files_in_one_second_are_set_aside_under_different_names(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    for content in ("first {", "second {"):
        (tmp_path / "state.json").write_text(content)
        store.load()
    asides = sorted(tmp_path.glob("state.json.corrupt-*"))
    assert sorted(p.read_text() for p in asides) == ["first {", "second {"]


def test_reserved_names_never_collide_even_with_the_same_clock(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    names = {reserve_aside(path, "rejected", clock=1_700_000_000.0).name for _ in range(3)}
    assert names == {
        "state.json.rejected-20231114T221320Z",
        "state.json.rejected-20231114T221320Z-2",
        "state.json.rejected-20231114T221320Z-3",
    }


# Valid JSON, every one (Python's json module reads Infinity, NaN and 1e400 too).
POISON = [
    ('"failures": Infinity', "failures=inf is not a whole number"),
    ('"failures": NaN', "failures=nan is not a whole number"),
    ('"failures": -1', "failures=-1 is not a whole number"),
    ('"failures": 2.5', "failures=2.5 is not a whole number"),
    ('"failures": true', "failures=True is not a whole number"),
    ('"failures": "3"', "failures='3' is not a whole number"),
    ('"outage_failures": 1e400', "outage_failures=inf is not a whole number"),
    ('"alerts_raised": 10000000000000', "alerts_raised=10000000000000 is not a whole number"),
    ('"since": 1e300', "since=1e+300 is not a Unix time"),
    ('"since": -5', "since=-5 is not a Unix time"),
    ('"since": "yesterday"', "since='yesterday' is not a Unix time"),
    ('"status": "sideways"', "status='sideways' is not one of"),
    ('"last_reason": 42', "last_reason is not a text"),
    ('"url": null', "url=None is not a text"),
    ('"status": "up"', "status='up' with since=1700000000.5"),
    ('"alerts_raised": 0', "status='down' with alerts_raised=0"),
]


@pytest.mark.parametrize(("field", "why"), POISON, ids=[p[0] for p in POISON])
def test_a_poisoned_record_is_set_aside_and_the_others_kept(tmp_path: Path, field: str, why: str) -> None:
    good = json.dumps(DOWN)
    key = field.split(":")[0]
    bad = json.dumps({k: v for k, v in DOWN.items() if f'"{k}"' != key})[:-1] + ", " + field + "}"
    (tmp_path / "state.json").write_text(f'{{"version": 1, "targets": {{"db": {good}, "api": {bad}}}}}')
    loaded = StateStore(tmp_path).load()
    assert list(loaded.targets) == ["db"]
    (problem,) = loaded.problems
    assert f"'api' ({why}" in problem
    assert "state of 1 target(s) unreadable" in problem
    assert "outage memory is lost" in problem
    (aside,) = tmp_path.glob("state.json.rejected-*")
    assert "api" in json.loads(aside.read_text(), parse_constant=str)["targets"]
    assert (tmp_path / "state.json").exists()  # the good records stay where they were


def test_a_record_that_is_not_an_object_is_set_aside(tmp_path: Path) -> None:
    write(tmp_path, {"db": DOWN, "api": [1, 2]})
    loaded = StateStore(tmp_path).load()
    assert list(loaded.targets) == ["db"]
    assert "'api' (not a record)" in loaded.problems[0]


def test_a_state_that_cannot_be_read_back_is_never_written(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(ValueError, match="Out of range float"):
        store.save({"db": {**DOWN, "since": float("inf")}})
    assert not (tmp_path / "state.json").exists()
