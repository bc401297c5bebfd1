"""Target states on disk: atomic writes, corrupt files set aside."""

from __future__ import annotations

from pathlib import Path

from keepalive.engine.statestore import StateStore


def test_saved_records_load_back(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save({"a": {"status": "down", "failures": 1}})
    records, warning = store.load()
    assert records == {"a": {"status": "down", "failures": 1}}
    assert warning is None
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left behind


def test_a_missing_file_is_a_fresh_start(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "nothing").load() == ({}, None)


def test_a_corrupt_file_is_moved_aside_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('{"targets": [1, 2')
    records, warning = StateStore(tmp_path).load()
    assert records == {}
    assert warning is not None and "corrupt" in warning
    assert not (tmp_path / "state.json").exists()
    assert len(list(tmp_path.glob("state.json.corrupt-*"))) == 1


def test_a_document_of_the_wrong_shape_counts_as_corrupt(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text('["not", "a", "state"]')
    records, warning = StateStore(tmp_path).load()
    assert records == {} and warning is not None
