"""The README's invariants, without Ray: nothing lost, in = out + rejected, lineage, resume.

Each check is also run against the mechanism broken on purpose (monkeypatched), to show it fails
when the invariant does not hold.
"""

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline import contracts, unit_commit
from synthmix.pipeline.contracts import Lineage, LineageError, RejectReason
from synthmix.pipeline.stage import Execution, Resources, Stage, StageContext
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.unit_commit import commit_in_slices, process_batch

INPUT_SCHEMA = pa.schema([pa.field(contracts.ID, pa.string()), pa.field(contracts.TEXT, pa.string())])


def input_rows(start: int, count: int) -> pa.Table:
    """Rows `start`..`start + count`; every fifth has an empty text, which Upper rejects."""
    ids = [f"row-{index:03d}" for index in range(start, start + count)]
    texts = ["" if index % 5 == 0 else f"text {index}" for index in range(start, start + count)]
    return pa.table({contracts.ID: ids, contracts.TEXT: texts}, schema=INPUT_SCHEMA)


class Upper(Stage):
    """Upper-cases `text`; rejects empty texts. Logs the ids it transforms."""

    name = "upper"
    input_columns = (contracts.TEXT,)
    output_fields = (pa.field("upper", pa.string()),)
    execution = Execution.FILE_TASKS
    resources = Resources(batch_size=4)

    def setup(self) -> None:
        self.seen: list[str] = []

    def transform(self, batch: pa.Table) -> pa.Table:
        self.seen.extend(batch[contracts.ID].to_pylist())
        texts = batch[contracts.TEXT].to_pylist()
        reasons = [RejectReason.EMPTY.value if not text else None for text in texts]
        return batch.append_column("upper", pa.array([text.upper() for text in texts])).append_column(contracts.REJECT_REASON, pa.array(reasons, pa.string()))


class LosesRow(Upper):
    name = "loses_row"

    def transform(self, batch):
        return super().transform(batch).slice(1)


class RenamesRow(Upper):
    name = "renames_row"

    def transform(self, batch):
        output = super().transform(batch)
        return output.set_column(0, contracts.ID, pa.array(["renamed", *output[contracts.ID].to_pylist()[1:]]))


class DuplicatesRow(Upper):
    name = "duplicates_row"

    def transform(self, batch):
        output = super().transform(batch)
        return pa.concat_tables([output, output.slice(0, 1)])


class Split(Stage):
    """Children: each text's words become rows; a text with no word yields a reject keyed by its parent."""

    name = "split"
    lineage = Lineage.CHILDREN
    carries_input = False
    output_fields = (*contracts.LINEAGE_FIELDS, pa.field("word", pa.string()))
    execution = Execution.FILE_TASKS

    def transform(self, batch):
        rows = []
        for row in batch.to_pylist():
            words = row[contracts.TEXT].split()
            base = {contracts.SEED_ID: row[contracts.ID]}
            if not words:
                rows.append(contracts.reject_row(base, row[contracts.ID], RejectReason.EMPTY, "no words"))
            for word in words:
                rows.append({**base, contracts.ID: contracts.derived_id(row[contracts.ID], word), contracts.PARENT_ID: row[contracts.ID], "word": word})
        return pa.Table.from_pylist(rows, schema=contracts.with_reject_columns(pa.schema(self.output_fields)))


class ForgetsEmptyTexts(Split):
    name = "forgets_empty_texts"

    def transform(self, batch):
        output = super().transform(batch)
        return output.filter(pc.is_null(output[contracts.REJECT_REASON]))


def make(stage_class: type[Stage], run_dir: Path) -> Stage:
    stage = stage_class(stage_class.params(), StageContext(run_dir=run_dir, stage_name=stage_class.name, input_schema=INPUT_SCHEMA))
    stage.setup()
    return stage


def write_inputs(folder: Path, sizes: list[int]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files, start = [], 0
    for index, size in enumerate(sizes):
        path = folder / f"part-{index:03d}.parquet"
        pq.write_table(input_rows(start, size), path)
        files.append(path)
        start += size
    return files


def all_ids(files: list[Path]) -> list[str]:
    return [row_id for path in files for row_id in pq.read_table(path)[contracts.ID].to_pylist()]


def committed_rows(stage_dir: StageDir) -> tuple[list[dict], list[dict]]:
    read = lambda files: [row for path in files for row in pq.read_table(path).to_pylist()]  # noqa: E731
    return read(stage_dir.part_files()), read(stage_dir.reject_files())


def assert_nothing_lost(stage_dir: StageDir, input_ids: list[str]) -> None:
    """in = out + rejected, in the counts and in the files; every input id in exactly one committed unit."""
    counts = stage_dir.unit_counts()
    accepted, rejected = committed_rows(stage_dir)
    assert counts.rows_in == len(input_ids), f"{counts.rows_in} rows counted in, {len(input_ids)} given"
    assert counts.rows_in == counts.rows_out + counts.rows_rejected, f"in {counts.rows_in} != out {counts.rows_out} + rejected {counts.rows_rejected}"
    assert (counts.rows_out, counts.rows_rejected) == (len(accepted), len(rejected)), "the counts disagree with the files"
    assert Counter(row[contracts.REJECT_REASON] for row in rejected) == counts.rejected
    assert sorted(stage_dir.committed_input_ids().to_pylist()) == sorted(input_ids), "an input id is missing or committed twice"


# --- one batch -----------------------------------------------------------------------------------
def test_a_batch_is_split_into_accepted_rows_and_rejects_counted_by_reason(tmp_path):
    done = process_batch(make(Upper, tmp_path), input_rows(0, 6))
    assert done.accepted.schema == make(Upper, tmp_path).output_schema()
    assert done.accepted[contracts.ID].to_pylist() == ["row-001", "row-002", "row-003", "row-004"]
    assert done.accepted["upper"].to_pylist() == ["TEXT 1", "TEXT 2", "TEXT 3", "TEXT 4"]
    assert done.rejected[contracts.ID].to_pylist() == ["row-000", "row-005"]
    assert done.rejected[contracts.REJECT_REASON].to_pylist() == ["empty", "empty"]
    assert (done.counts.rows_in, done.counts.rows_out, dict(done.counts.rejected)) == (6, 4, {"empty": 2})


@pytest.mark.parametrize("stage_class", [LosesRow, RenamesRow, DuplicatesRow])
def test_a_same_row_stage_that_loses_renames_or_repeats_a_row_fails_with_a_lineage_error(tmp_path, stage_class):
    with pytest.raises(LineageError, match="lineage same_row"):
        process_batch(make(stage_class, tmp_path), input_rows(0, 6))


def test_a_children_stage_keeps_lineage_through_a_reject_keyed_by_the_parent(tmp_path):
    done = process_batch(make(Split, tmp_path), input_rows(0, 3))
    assert done.rejected[contracts.PARENT_ID].to_pylist() == ["row-000"]
    assert set(done.accepted[contracts.PARENT_ID].to_pylist()) == {"row-001", "row-002"}
    with pytest.raises(LineageError, match=r"no output or reject row for input ids \['row-000'\]"):
        process_batch(make(ForgetsEmptyTexts, tmp_path), input_rows(0, 3))


# --- committed units -----------------------------------------------------------------------------
def commit_files(stage_class: type[Stage], run_dir: Path) -> tuple[StageDir, list[str]]:
    files = write_inputs(run_dir / "seeds", [7, 6])
    stage_dir = StageDir(run_dir, stage_class.name)
    stage_dir.begin("fingerprint", resumable=True)
    commit_in_slices(make(stage_class, run_dir), files, None)
    return stage_dir, all_ids(files)


def test_committed_units_hold_every_input_row_once_as_an_output_or_a_reject(tmp_path):
    stage_dir, input_ids = commit_files(Upper, tmp_path)
    assert len(stage_dir.committed_units()) == 4  # 7 rows: 4 + 3; 6 rows: 4 + 2
    assert_nothing_lost(stage_dir, input_ids)


def test_without_the_lineage_check_a_lost_row_breaks_in_equals_out_plus_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(unit_commit, "check_lineage", lambda stage, input_ids, output: None)
    stage_dir, input_ids = commit_files(LosesRow, tmp_path)
    with pytest.raises(AssertionError, match="in 13 != out"):
        assert_nothing_lost(stage_dir, input_ids)


def test_rejects_dropped_instead_of_written_break_in_equals_out_plus_rejected(tmp_path, monkeypatch):
    split = unit_commit.split_rejects
    monkeypatch.setattr(unit_commit, "split_rejects", lambda output, schema: (split(output, schema)[0], split(output, schema)[1].slice(0, 0)))
    stage_dir, input_ids = commit_files(Upper, tmp_path)
    with pytest.raises(AssertionError, match=r"in 13 != out 10 \+ rejected 0"):
        assert_nothing_lost(stage_dir, input_ids)


# --- resume --------------------------------------------------------------------------------------
class CrashingUpper(Upper):
    """Upper that dies on its third batch, as a killed worker would."""

    name = "upper"

    def transform(self, batch):
        if len(self.seen) >= 8:
            raise KeyboardInterrupt("killed")
        return super().transform(batch)


def interrupted_then_resumed(run_dir: Path) -> tuple[set[str], set[str], StageDir, list[str]]:
    """Commit until a crash, leave what a kill leaves, resume. Returns the ids committed before
    the crash, the ids the resumed attempt transformed, the stage folder and the input ids."""
    files = write_inputs(run_dir / "seeds", [7, 6])
    stage_dir = StageDir(run_dir, "upper")
    assert stage_dir.begin("fingerprint", resumable=True) is False
    with pytest.raises(KeyboardInterrupt):
        commit_in_slices(make(CrashingUpper, run_dir), files, None)
    committed_before = set(stage_dir.committed_input_ids().to_pylist())
    # A unit whose marker never came: its part and ids files, and a half-written temporary.
    pq.write_table(input_rows(100, 2).append_column("upper", pa.array(["X", "Y"])), stage_dir.part_path("torn"))
    pq.write_table(pa.table({contracts.ID: ["row-100", "row-101"]}), stage_dir.units_path / "torn.ids.parquet")
    (stage_dir.path / ".part-torn.parquet.123.tmp").write_bytes(b"half")

    assert stage_dir.begin("fingerprint", resumable=True) is True
    resumed = make(Upper, run_dir)
    commit_in_slices(resumed, files, stage_dir.committed_input_ids())
    return committed_before, set(resumed.seen), stage_dir, all_ids(files)


def assert_resumed_like_an_uninterrupted_run(committed_before, redone, stage_dir, input_ids, reference_dir: Path) -> None:
    assert committed_before and not (redone & committed_before), "a committed unit was redone"
    assert_nothing_lost(stage_dir, input_ids)
    reference, _ = commit_files(Upper, reference_dir)
    by_id = lambda rows: sorted(rows, key=lambda row: row[contracts.ID])  # noqa: E731
    assert by_id(committed_rows(stage_dir)[0]) == by_id(committed_rows(reference)[0])
    assert by_id(committed_rows(stage_dir)[1]) == by_id(committed_rows(reference)[1])


def test_an_interrupted_stage_resumes_without_redoing_committed_units_to_the_same_rows(tmp_path):
    assert_resumed_like_an_uninterrupted_run(*interrupted_then_resumed(tmp_path / "run"), tmp_path / "reference")


def test_a_resume_that_ignores_committed_ids_is_caught_redoing_them(tmp_path, monkeypatch):
    monkeypatch.setattr(unit_commit, "drop_committed_rows", lambda table, done_ids: table)
    with pytest.raises(AssertionError, match="a committed unit was redone"):
        assert_resumed_like_an_uninterrupted_run(*interrupted_then_resumed(tmp_path / "run"), tmp_path / "reference")


def test_a_resume_that_keeps_a_torn_unit_is_caught_with_rows_no_unit_counts(tmp_path, monkeypatch):
    monkeypatch.setattr(StageDir, "_remove_uncommitted_files", lambda self: None)
    with pytest.raises(AssertionError, match="the counts disagree with the files"):
        assert_resumed_like_an_uninterrupted_run(*interrupted_then_resumed(tmp_path / "run"), tmp_path / "reference")
