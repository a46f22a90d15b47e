"""Stage selection and staleness through real runs: what reruns, what is skipped, what status says."""

import json

import pyarrow as pa
import pytest

from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.inspection.run_status import stage_statuses
from synthmix.pipeline.runner import RunDirError, run_job
from synthmix.pipeline.stage import Execution, Stage, StageParams
from synthmix.stages.seeds import Seeds


class LengthParams(StageParams):
    scale: int = 1


class Length(Stage):
    """A cheap stage after seeds: text length times `scale`."""

    name = "length"
    input_columns = ("text",)
    output_fields = (pa.field("length", pa.int64()),)
    params = LengthParams
    execution = Execution.FILE_TASKS

    def transform(self, batch):
        return batch.append_column("length", pa.array([len(t) * self.params.scale for t in batch["text"].to_pylist()], pa.int64()))


REGISTRY = {"seeds": Seeds, "length": Length}


@pytest.fixture
def job_dir(tmp_path):
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": f"document {i} " * 5}) + "\n" for i in range(12)))
    return tmp_path


def run(job_dir, scale=1, chunk=3000, **selection):
    job = parse_job(
        {
            "name": "t",
            "run_dir": str(job_dir / "run"),
            "stages": ["seeds", "length"],
            "seeds": {"path": "docs.jsonl", "chunk_chars": chunk},
            "length": {"scale": scale},
        },
        source="t.yaml",
    )
    outcomes = run_job(job, REGISTRY, job_dir=job_dir, log=lambda line: None, **selection)
    return {outcome.name: outcome.action for outcome in outcomes}


def states(job_dir):
    return {row["stage"]: row["state"] for row in stage_statuses(job_dir / "run", REGISTRY)}


def test_fresh_stages_are_skipped_and_a_changed_one_reruns_with_downstream(job_dir, ray_session):
    assert run(job_dir) == {"seeds": "ran", "length": "ran"}
    assert run(job_dir) == {"seeds": "skipped", "length": "skipped"}
    assert run(job_dir, scale=2) == {"seeds": "skipped", "length": "ran"}
    assert states(job_dir) == {"seeds": "fresh", "length": "fresh"}


def test_only_from_and_to_select_what_runs(job_dir, ray_session):
    run(job_dir)
    assert run(job_dir, only="seeds") == {"seeds": "ran"}
    assert run(job_dir, start="length") == {"length": "ran"}
    # --to stops after seeds: a changed seeds config leaves length stale, and status says so.
    assert run(job_dir, chunk=2000, stop="seeds") == {"seeds": "ran"}
    job = parse_job(
        {"name": "t", "run_dir": str(job_dir / "run"), "stages": ["seeds", "length"], "seeds": {"path": "docs.jsonl", "chunk_chars": 2000}},
        source="t.yaml",
    )
    from synthmix.pipeline.graph import build_graph
    from synthmix.pipeline.store import StageDir

    plan = build_graph(job, REGISTRY, run_dir=job_dir / "run", job_dir=job_dir)
    assert StageDir(job_dir / "run", "length").state(plan[1].fingerprint) == "stale"


def test_a_stage_whose_input_never_ran_is_refused_with_what_to_run(job_dir, ray_session):
    with pytest.raises(ConfigError, match="reads 'seeds', which is missing; run it first"):
        run(job_dir, only="length")


def test_interrupted_stage_is_reported_as_interrupted(job_dir, ray_session):
    run(job_dir)
    from synthmix.pipeline.store import StageDir

    stage_dir = StageDir(job_dir / "run", "length")
    stage_dir.manifest_path.unlink()
    (stage_dir.path / "_progress.json").write_text(json.dumps({"fingerprint": "x"}))
    assert states(job_dir)["length"] == "interrupted"


def test_unwritable_run_directory_fails_before_any_work(job_dir, ray_session):
    blocker = job_dir / "run"
    blocker.write_text("a file where the run directory should be")
    with pytest.raises(RunDirError, match="not writable.*--run-dir"):
        run(job_dir)
