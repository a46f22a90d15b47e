"""Finding a run's stages and files; every stage output loads with Hugging Face `datasets`."""

import datasets
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.inspection.run_contents import RunInspectionError, data_files, stage_names
from tests.pipeline.inspection_run import make_inspection_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("contents"))


def test_stages_are_job_order_then_unlisted_by_write_time_then_shards(run):
    assert stage_names(run.run_dir) == ["seeds", "synthesize", "evolve", "critique", "shards"]


def test_every_stage_output_and_its_rejects_load_with_datasets(run, tmp_path):
    for stage in stage_names(run.run_dir):
        for rejects in (False, True) if stage != "shards" else (False,):
            files = data_files(run.run_dir, stage, rejects=rejects)
            if not files:
                continue
            loaded = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train", cache_dir=str(tmp_path / "hf-cache"))
            assert loaded.num_rows == sum(pq.ParquetFile(f).metadata.num_rows for f in files)
            assert "id" in loaded.column_names


def test_an_unknown_stage_is_an_error_listing_the_stages(run):
    with pytest.raises(RunInspectionError, match="stage 'answer' is not in run .*stages: seeds, synthesize"):
        data_files(run.run_dir, "answer")


def test_a_folder_that_is_not_a_run_is_an_error(tmp_path):
    with pytest.raises(RunInspectionError, match="does not exist"):
        stage_names(tmp_path / "nowhere")
