"""StageDir without Ray: states, atomic units (marker last), resume clean-up, atomic writes and folder swaps."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline import store
from synthmix.pipeline.store import StageDir, StageState, UnitCounts, swap_dir, write_atomic_bytes, write_atomic_json


def unit(ids: list[str]) -> tuple[pa.Table, pa.Table, pa.Array, UnitCounts]:
    accepted = pa.table({"id": ids[1:], "text": [f"t{i}" for i in ids[1:]]})
    rejected = pa.table({"id": ids[:1], "text": ["t"], "reject_reason": ["empty"], "reject_detail": [None]})
    counts = UnitCounts(rows_in=len(ids), rows_out=len(ids) - 1)
    counts.rejected["empty"] = 1
    return accepted, rejected, pa.array(ids), counts


def test_states_run_from_missing_through_interrupted_to_fresh_and_stale(tmp_path):
    stage_dir = StageDir(tmp_path, "s")
    assert stage_dir.state("a") is StageState.MISSING
    stage_dir.begin("a", resumable=True)
    assert stage_dir.state("a") is StageState.INTERRUPTED
    stage_dir.commit({"fingerprint": "a"})
    assert stage_dir.state("a") is StageState.FRESH
    assert stage_dir.state("b") is StageState.STALE
    assert stage_dir.progress() is None


def test_a_committed_unit_is_found_with_its_rows_ids_and_counts(tmp_path):
    stage_dir = StageDir(tmp_path, "s")
    stage_dir.begin("a", resumable=True)
    stage_dir.commit_unit("u1", *unit(["a", "b", "c"]))
    stage_dir.commit_unit("u2", *unit(["d", "e"]))
    assert stage_dir.committed_units() == ["u1", "u2"]
    assert sorted(stage_dir.committed_input_ids().to_pylist()) == ["a", "b", "c", "d", "e"]
    assert stage_dir.unit_counts().to_json()["rows_in"] == 5
    assert stage_dir.unit_counts().to_json()["rejected"] == {"empty": 2}
    assert [pq.read_table(f).num_rows for f in stage_dir.part_files()] == [2, 1]


def marker_first_commit_unit(self, unit_name, accepted, rejected, input_ids, counts):
    """commit_unit broken on purpose: the marker before the data."""
    write_atomic_json(self.units_path / f"{unit_name}.json", counts.to_json())
    store.write_atomic_parquet(self.units_path / f"{unit_name}.ids.parquet", pa.table({"id": input_ids}))
    if rejected.num_rows:
        store.write_atomic_parquet(self.reject_path(unit_name), rejected)
    store.write_atomic_parquet(self.part_path(unit_name), accepted)


def crash_while_committing(tmp_path, monkeypatch) -> StageDir:
    """Commit one unit, then crash while writing the second unit's accepted rows."""
    stage_dir = StageDir(tmp_path, "s")
    stage_dir.begin("a", resumable=True)
    stage_dir.commit_unit("u1", *unit(["a", "b"]))
    write = store.write_atomic_parquet

    def dies_on_the_part(path, table, metadata=None):
        if path == stage_dir.part_path("u2"):
            raise OSError("disk full")
        write(path, table, metadata)

    monkeypatch.setattr(store, "write_atomic_parquet", dies_on_the_part)
    with pytest.raises(OSError):
        stage_dir.commit_unit("u2", *unit(["c", "d"]))
    monkeypatch.setattr(store, "write_atomic_parquet", write)
    return stage_dir


def assert_every_committed_unit_is_whole(stage_dir: StageDir) -> None:
    for name in stage_dir.committed_units():
        assert stage_dir.part_path(name).exists(), f"unit {name} is committed without its rows"
        assert (stage_dir.units_path / f"{name}.ids.parquet").exists()


def test_a_crash_mid_unit_leaves_it_uncommitted_because_the_marker_is_written_last(tmp_path, monkeypatch):
    stage_dir = crash_while_committing(tmp_path, monkeypatch)
    assert stage_dir.committed_units() == ["u1"]
    assert stage_dir.committed_input_ids().to_pylist() == ["a", "b"]
    assert_every_committed_unit_is_whole(stage_dir)


def test_with_the_marker_written_first_a_crash_leaves_a_committed_unit_without_its_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(StageDir, "commit_unit", marker_first_commit_unit)
    stage_dir = crash_while_committing(tmp_path, monkeypatch)
    with pytest.raises(AssertionError, match="unit u2 is committed without its rows"):
        assert_every_committed_unit_is_whole(stage_dir)


def test_a_resume_keeps_committed_units_and_removes_what_a_killed_attempt_left(tmp_path, monkeypatch):
    stage_dir = crash_while_committing(tmp_path, monkeypatch)
    assert stage_dir.reject_path("u2").exists(), "the crash came after u2's rejects were written"
    # A unit killed after its rows and ids, before its marker; and a half-written temporary.
    pq.write_table(pa.table({"id": ["e"], "text": ["te"]}), stage_dir.part_path("u3"))
    pq.write_table(pa.table({"id": ["e"]}), stage_dir.units_path / "u3.ids.parquet")
    (stage_dir.path / ".part-u4.parquet.1.tmp").write_bytes(b"half")
    assert stage_dir.begin("a", resumable=True) is True
    assert stage_dir.committed_units() == ["u1"]
    assert [path.name for path in stage_dir.part_files()] == ["part-u1.parquet"]
    assert [path.name for path in stage_dir.reject_files()] == ["part-u1.parquet"]
    assert sorted(path.name for path in stage_dir.units_path.iterdir()) == ["u1.ids.parquet", "u1.json"]
    assert not list(stage_dir.path.rglob("*.tmp"))


@pytest.mark.parametrize("fingerprint, resumable", [("b", True), ("a", False)])
def test_a_changed_job_or_a_stage_that_cannot_resume_starts_from_an_empty_folder(tmp_path, fingerprint, resumable):
    stage_dir = StageDir(tmp_path, "s")
    stage_dir.begin("a", resumable=True)
    stage_dir.commit_unit("u1", *unit(["a", "b"]))
    assert stage_dir.begin(fingerprint, resumable=resumable) is False
    assert stage_dir.committed_units() == [] and stage_dir.part_files() == []
    assert json.loads((stage_dir.path / "_progress.json").read_text())["fingerprint"] == fingerprint
    assert not list(tmp_path.glob(".s.trash-*"))


def test_a_completed_stage_is_redone_whole_even_with_the_same_fingerprint(tmp_path):
    stage_dir = StageDir(tmp_path, "s")
    stage_dir.begin("a", resumable=True)
    stage_dir.commit_unit("u1", *unit(["a", "b"]))
    stage_dir.commit({"fingerprint": "a"})
    assert stage_dir.begin("a", resumable=True) is False
    assert stage_dir.committed_units() == [] and stage_dir.manifest() is None


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    write_atomic_bytes(path, b"old")

    def fails(handle):
        raise OSError("no space")

    monkeypatch.setattr(store.os, "fsync", fails)
    with pytest.raises(OSError):
        write_atomic_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_swap_puts_the_new_folder_in_place_whole_and_clear_removes_a_killed_clears_trash(tmp_path):
    target, ready = tmp_path / "shards", tmp_path / ".shards.tmp-1"
    target.mkdir()
    (target / "old").write_text("old")
    ready.mkdir()
    (ready / "new").write_text("new")
    swap_dir(ready, target)
    assert [p.name for p in target.iterdir()] == ["new"] and not ready.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]

    (tmp_path / ".s.trash-9-9").mkdir()  # set aside by a clear that was killed before deleting it
    StageDir(tmp_path, "s").clear()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "shards"]
