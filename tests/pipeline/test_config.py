from pathlib import Path

import pytest
import yaml

from synthmix.pipeline import storage
from synthmix.pipeline.config import ConfigError, apply_override, load_job, parse_job
from synthmix.pipeline.graph import build_graph
from synthmix.stages.registry import STAGES


def write_job(tmp_path, data) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def plan(job, tmp_path):
    return build_graph(job, STAGES, run_dir=tmp_path / "run", job_dir=tmp_path)


def test_unknown_top_level_key_names_the_key_and_file(tmp_path):
    path = write_job(tmp_path, {"name": "j", "stages": ["seeds"], "sedes": {}})
    with pytest.raises(ConfigError, match=r"job\.yaml: unknown key 'sedes'"):
        load_job(path)


def test_wrong_type_in_fixed_section_names_the_dotted_key(tmp_path):
    path = write_job(tmp_path, {"name": "j", "stages": ["seeds"], "ray": {"num_cpus": "two"}})
    with pytest.raises(ConfigError, match=r"job\.yaml: key 'ray\.num_cpus'"):
        load_job(path)


def test_unknown_key_in_stage_section_is_rejected_with_its_path(tmp_path):
    job = load_job(write_job(tmp_path, {"name": "j", "stages": ["seeds"], "seeds": {"chunk_size": 10}}))
    with pytest.raises(ConfigError, match=r"key 'seeds\.chunk_size': unknown key"):
        plan(job, tmp_path)


def test_wrong_type_in_stage_section_is_rejected(tmp_path):
    job = load_job(write_job(tmp_path, {"name": "j", "stages": ["seeds"], "seeds": {"chunk_chars": "big"}}))
    with pytest.raises(ConfigError, match=r"key 'seeds\.chunk_chars'"):
        plan(job, tmp_path)


def test_undefined_stage_kind_is_rejected_with_known_kinds(tmp_path):
    job = parse_job({"name": "j", "stages": ["seeds", {"name": "x", "kind": "nonexistent"}]}, source="j.yaml")
    with pytest.raises(ConfigError, match=r"kind 'nonexistent', which does not exist; known kinds: .*seeds"):
        plan(job, tmp_path)


def test_input_naming_an_unlisted_stage_is_rejected(tmp_path):
    job = parse_job({"name": "j", "stages": ["seeds", {"name": "again", "kind": "seeds", "input": "nowhere"}]}, source="j.yaml")
    with pytest.raises(ConfigError, match="reads files, not a stage"):
        plan(job, tmp_path)


def test_unknown_model_engine_is_rejected(tmp_path):
    path = write_job(tmp_path, {"name": "j", "stages": ["seeds"], "models": {"big": {"engine": "tgi"}}})
    with pytest.raises(ConfigError, match=r"key 'models\.big"):
        load_job(path)


def test_set_override_is_validated_like_the_file(tmp_path):
    path = write_job(tmp_path, {"name": "j", "stages": ["seeds"]})
    job = load_job(path, ["seeds.chunk_chars=500", "ray.num_cpus=1"])
    assert job.ray.num_cpus == 1
    assert plan(job, tmp_path)[0].stage.params.chunk_chars == 500
    with pytest.raises(ConfigError, match=r"key 'ray\.num_cpus'"):
        load_job(path, ["ray.num_cpus=lots"])


def test_set_override_is_recorded_in_the_snapshot(tmp_path):
    job = load_job(write_job(tmp_path, {"name": "j", "stages": ["seeds"]}), ["seeds.path=corpus.parquet"])
    assert job.snapshot()["seeds"]["path"] == "corpus.parquet"


def test_set_without_equals_sign_says_how_to_write_it():
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        apply_override({}, "dedup.threshold")


def test_missing_job_file_says_what_to_pass(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_job(tmp_path / "nope.yaml")


SHIPPED_JOBS = sorted(path for path in (Path(__file__).resolve().parents[2] / "jobs").glob("*.yaml") if "stages" in yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("job_file", SHIPPED_JOBS, ids=lambda path: path.name)
def test_every_shipped_job_and_its_stage_sections_load(job_file):
    # jobs/evolve_eval.yaml kept critique's old 1-10 min_score for a session after critique moved
    # to [0, 1], and nothing loaded it until someone ran it. (Building the graph would also look
    # for each job's seed files, which jobs/cluster.yaml keeps on cluster storage.)
    job = load_job(job_file)
    for entry in job.stages:
        STAGES[entry.stage_kind].params(**job.sections.get(entry.name, {}))  # what build_graph validates


def test_an_s3_run_dir_carries_the_jobs_endpoint_and_leaves_the_process_setting_alone(monkeypatch):
    monkeypatch.delenv(storage.ENDPOINT_ENV, raising=False)
    monkeypatch.delenv(storage.REGION_ENV, raising=False)
    job = parse_job(
        {"name": "j", "run_dir": "s3://bucket/runs/j", "storage": {"endpoint": "http://store.test:9000", "region": "eu-west-1"}, "stages": ["seeds"]}
    )
    run_dir = job.resolved_run_dir()
    assert isinstance(run_dir, storage.RemotePath) and run_dir.endpoint == storage.Endpoint("http://store.test:9000", "eu-west-1")
    assert storage.current_endpoint() == storage.Endpoint(), "asking for the run directory set the process's endpoint"
    assert storage.as_path("s3://bucket/other").endpoint == storage.Endpoint()


def test_a_jobs_endpoint_holds_inside_its_block_and_the_previous_one_comes_back_after_an_error(monkeypatch):
    monkeypatch.delenv(storage.ENDPOINT_ENV, raising=False)
    monkeypatch.delenv(storage.REGION_ENV, raising=False)
    outer = parse_job({"name": "outer", "storage": {"endpoint": "http://outer.test:9000"}, "stages": ["seeds"]})
    inner = parse_job({"name": "inner", "storage": {"endpoint": "http://inner.test:9000"}, "stages": ["seeds"]})
    with outer.storage_in_effect():
        with pytest.raises(RuntimeError, match="the job failed"), inner.storage_in_effect():
            assert storage.as_path("s3://b/k").endpoint.url == "http://inner.test:9000"
            raise RuntimeError("the job failed")
        assert storage.current_endpoint().url == "http://outer.test:9000"
    assert storage.current_endpoint() == storage.Endpoint()
