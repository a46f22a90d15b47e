"""`synthmix run --pilot N` as a job override: the seeds stage's cap, and a run folder of its own."""

import pytest
import yaml

from synthmix.pipeline.cli.pilot import load_pilot_job
from synthmix.pipeline.config import ConfigError


def write(tmp_path, job):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_a_pilot_caps_every_seeds_stage_and_runs_beside_the_full_run(tmp_path):
    path = write(tmp_path, {"name": "demo", "stages": ["seeds", {"name": "more_seeds", "kind": "seeds"}], "more_seeds": {"domain": "math"}})
    job = load_pilot_job(path, ["seeds.chunk_chars=900"], 4)
    assert job.sections["seeds"] == {"chunk_chars": 900, "max_chunks": 4}
    assert job.sections["more_seeds"] == {"domain": "math", "max_chunks": 4}
    assert job.run_dir == "runs/demo-pilot-4"
    named = load_pilot_job(write(tmp_path, {"name": "demo", "run_dir": "/data/runs/demo/", "stages": ["seeds"]}), [], 12)
    assert named.run_dir == "/data/runs/demo-pilot-12"


def test_a_pilot_of_a_job_without_seeds_or_of_no_chunks_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="this job has none; run it without --pilot"):
        load_pilot_job(write(tmp_path, {"name": "demo", "stages": ["probes"]}), [], 4)
    with pytest.raises(ConfigError, match="at least one seed chunk"):
        load_pilot_job(write(tmp_path, {"name": "demo", "stages": ["seeds"]}), [], 0)
