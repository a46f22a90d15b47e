"""Exporting a stage: JSON Lines and a Hugging Face dataset hold exactly the stage's rows."""

import json

import datasets
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.inspection.export import export_stage
from synthmix.pipeline.inspection.run_contents import RunInspectionError, data_files
from tests.pipeline.inspection_run import make_inspection_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("export"))


def stage_rows(run, stage, rejects=False):
    return sorted(pq.read_table(data_files(run.run_dir, stage, rejects=rejects)).to_pylist(), key=lambda row: row["id"])


def test_jsonl_export_holds_every_row_and_column(run, tmp_path):
    result = export_stage(run.run_dir, "critique", "jsonl", tmp_path / "critique.jsonl")
    exported = [json.loads(line) for line in (tmp_path / "critique.jsonl").read_text(encoding="utf-8").splitlines()]
    assert result["rows"] == len(exported) == 5
    assert sorted(exported, key=lambda row: row["id"]) == stage_rows(run, "critique")
    assert {row["source_id"] for row in exported} == {"doc-0", "doc-1", "doc-2"}  # the record identity goes out too
    assert all(json.loads(row["origin"])["file"] == "corpus.jsonl" for row in exported)


def test_hf_export_loads_from_disk_with_the_same_rows(run, tmp_path):
    export_stage(run.run_dir, "seeds", "hf", tmp_path / "seeds-hf")
    loaded = datasets.load_from_disk(str(tmp_path / "seeds-hf"))
    assert sorted(loaded.to_list(), key=lambda row: row["id"]) == stage_rows(run, "seeds")
    assert [p.name for p in tmp_path.iterdir()] == ["seeds-hf"]  # no cache left beside it


def test_rejects_export_and_existing_paths_are_refused(run, tmp_path):
    export_stage(run.run_dir, "seeds", "jsonl", tmp_path / "rejects.jsonl", rejects=True)
    reasons = {json.loads(line)["reject_reason"] for line in (tmp_path / "rejects.jsonl").read_text().splitlines()}
    assert reasons == {"not_utf8", "parse_error"}
    with pytest.raises(RunInspectionError, match="already exists"):
        export_stage(run.run_dir, "seeds", "jsonl", tmp_path / "rejects.jsonl")


def test_an_output_that_cannot_be_written_is_an_error_saying_to_pass_another(run, tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(RunInspectionError, match="cannot write .*a-file/seeds.jsonl.*pass -o with a writable path"):
        export_stage(run.run_dir, "seeds", "jsonl", tmp_path / "a-file" / "seeds.jsonl")
