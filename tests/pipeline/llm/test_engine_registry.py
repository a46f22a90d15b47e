"""The engine seam: a job's `models:` entry is validated and run by the engine its `engine:`
names, and an engine added in one module (tests/pipeline/fake_engine.py) plus one registration
line runs a stage like the built-in ones (docs/engines.md, "Adding an engine")."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.contracts import ConfigError
from synthmix.pipeline.llm import engine_pool, engines
from synthmix.pipeline.llm.engine_resources import StageNeed, check_engine_room
from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.llm.engines.openai import OpenAIEngine
from synthmix.pipeline.llm.engines.vllm import VllmEngine
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_engine import FakeEngine, FakeModel
from tests.pipeline.test_resume import write_corpus


@pytest.fixture
def fake_engine():
    """FakeEngine registered for one test: the one line a new engine adds."""
    registered = dict(engines._ENGINES)
    engines.register(FakeEngine())
    yield
    engines._ENGINES.clear()
    engines._ENGINES.update(registered)


def job_with(models: dict, **extra) -> object:
    return parse_job({"name": "j", "stages": ["seeds"], "models": models, **extra}, source="job.yaml")


def test_each_built_in_engine_is_found_by_its_engine_name():
    job = job_with({"e": {}, "v": {"engine": "vllm", "model": "org/m"}, "o": {"engine": "openai", "base_url": "http://h/v1", "model": "m"}})
    assert [type(engines.engine_for(spec)) for spec in job.models.values()] == [EmbeddedEngine, VllmEngine, OpenAIEngine]
    assert isinstance(job.models["e"], EmbeddedModel)


def test_an_unregistered_engine_is_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError, match="Input tag 'fake' .* does not match any of the expected tags: 'embedded', 'vllm', 'openai'"):
        job_with({"m": {"engine": "fake"}})


def test_a_registered_engine_validates_its_entries_with_its_own_settings(fake_engine):
    job = job_with({"m": {"engine": "fake", "replicas": 2, "cpus_per_replica": 0.5}})
    assert job.models["m"] == FakeModel(engine="fake", replicas=2, cpus_per_replica=0.5)
    # The shared settings come from the base model, with the same bounds as every engine's.
    with pytest.raises(ConfigError, match=r"key 'models.m.fake.batches_in_flight': Input should be greater than or equal to 1"):
        job_with({"m": {"engine": "fake", "batches_in_flight": 0}})
    with pytest.raises(ConfigError, match=r"key 'models.m.fake.gpus_per_replica': unknown key"):
        job_with({"m": {"engine": "fake", "gpus_per_replica": 1}})


def test_a_registered_engine_s_reservation_is_checked_against_the_cluster(fake_engine):
    job = job_with({"m": {"engine": "fake", "replicas": 2, "cpus_per_replica": 1}})
    with pytest.raises(ConfigError, match=r"reserve 2 of the 2 CPUs Ray has \(model 'm' 2 CPUs \(2 replica\(s\) x cpus_per_replica 1\)\)"):
        check_engine_room([StageNeed("synthesize", ("m",), 0.25)], job.models, {"CPU": 2})


def test_a_stage_runs_through_an_engine_added_in_one_module_and_one_registration(fake_engine, tmp_path, ray_session):
    corpus = tmp_path / "corpus.jsonl"
    write_corpus(corpus, 4)
    job = parse_job(
        {
            "name": "fake",
            "run_dir": str(tmp_path / "run"),
            "models": {"m": {"engine": "fake", "answer_after_s": 0.01}},
            "stages": ["seeds", "synthesize"],
            "seeds": {"path": str(corpus)},
            "synthesize": {"model": "m"},
        },
        source="fake",
    )
    log: list[str] = []
    run_job(job, STAGES, log=log.append)
    assert sum("[synthesize] model m: starting 1 engine replica(s)" in line for line in log) == 1, log
    manifest = StageDir(job.resolved_run_dir(), "synthesize").manifest()
    assert manifest["rows_out"] > 0 and manifest["llm"]["m"]["requests"] > 0, manifest
    rows = pq.read_table(StageDir(job.resolved_run_dir(), "synthesize").part_files()[0]).to_pylist()
    # The fake's replies fit synthesize's schema: each kept row holds an instruction it parsed.
    assert rows and all(row["instruction"] for row in rows), rows
    assert manifest["llm"]["m"]["startup_s"] > 0
    assert engine_pool.active_pool() is None
