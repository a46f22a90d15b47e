"""The declared stage lifecycle, without Ray: execution declarations, worker stages released
when their attempt ends, and publications that have one owner and are withdrawn when stale."""

from pathlib import Path

import pyarrow as pa
import pytest

from synthmix.pipeline import unit_commit
from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.graph import PlannedStage, build_graph, check_publications
from synthmix.pipeline.runner import withdraw_publications
from synthmix.pipeline.stage import Execution, GlobalStage, Stage, StageContext, StageParams
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.unit_commit import release_worker_stages, worker_stage
from synthmix.stages.registry import STAGES


# --- how a stage executes is declared, and misdeclarations fail when the class is defined ---------
def test_registered_stages_declare_how_they_execute():
    declared = {name: stage.execution for name, stage in STAGES.items()}
    assert {name for name, execution in declared.items() if execution is Execution.FILE_TASKS} == {
        "quality", "decontaminate", "consistency", "tokenize", "probes", "probe_exit", "judged_responses", "difficulty",
    }  # fmt: skip
    assert {name for name, execution in declared.items() if execution is Execution.GLOBAL} == {"gather_samples", "mix", "dedup"}


def test_a_file_task_stage_with_dataset_work_is_refused_naming_setup_on_driver():
    with pytest.raises(TypeError, match=r"overrides prepare\(\).*setup_on_driver"):

        class Checks(Stage):
            name = "checks"
            execution = Execution.FILE_TASKS

            def prepare(self, dataset):
                return dataset


def test_a_batch_stage_that_plans_file_tasks_is_refused():
    with pytest.raises(TypeError, match=r"overrides commit_files\(\), which only file_tasks execution calls"):

        class Sharder(Stage):
            name = "sharder"

            def commit_files(self, files, *, task_index, done_ids):
                return pa.table({})


def test_sources_run_as_batches_and_global_stages_subclass_global_stage():
    with pytest.raises(TypeError, match="source stage"):

        class Source(Stage):
            name = "source"
            is_source = True
            execution = Execution.FILE_TASKS

    with pytest.raises(TypeError, match="subclasses GlobalStage"):

        class Votes(Stage):
            name = "votes"
            execution = Execution.GLOBAL

    with pytest.raises(TypeError, match="subclasses GlobalStage"):

        class Clusters(GlobalStage):
            name = "clusters"
            execution = Execution.BATCHES


def test_a_file_task_stage_that_calls_a_model_is_refused_when_the_graph_is_built(tmp_path):
    class ModelParams(StageParams):
        model: str = "embedded"

    class Asks(Stage):
        name = "asks"
        execution = Execution.FILE_TASKS
        params = ModelParams

        def models_used(self):
            return (self.params.model,)

    job = parse_job({"name": "j", "stages": ["seeds", "asks"]}, source="j.yaml")
    with pytest.raises(TypeError, match="declare `execution = Execution.BATCHES`"):
        build_graph(job, {"seeds": STAGES["seeds"], "asks": Asks}, run_dir=tmp_path, prompt_hash=lambda template_id: "p")


# --- worker stages --------------------------------------------------------------------------------
class Loaded(Stage):
    name = "loaded"
    events: list = []

    def setup(self):
        self.events.append(("setup", self.context.stage_name))

    def teardown(self):
        self.events.append(("teardown", self.context.stage_name))


def loaded(name: str) -> Loaded:
    return Loaded(Loaded.params(), StageContext(run_dir=Path("."), stage_name=name))


def test_a_worker_sets_a_stage_up_once_per_attempt_and_releases_it_when_the_attempt_ends():
    Loaded.events = []
    first = loaded("a")
    assert worker_stage(first, "attempt-1") is first
    assert worker_stage(loaded("a"), "attempt-1") is first, "later batches of the attempt reuse the set-up stage"
    worker_stage(loaded("b"), "attempt-2")  # the next attempt's first batch in this process
    assert Loaded.events == [("setup", "a"), ("teardown", "a"), ("setup", "b")]
    release_worker_stages("attempt-2")  # what the runner calls when an attempt ends
    assert Loaded.events[-1] == ("teardown", "b")
    assert unit_commit._WORKER_STAGES == {}


# --- publications ---------------------------------------------------------------------------------
class Publisher(Stage):
    name = "publisher"

    def __init__(self, paths=(), holds=True):
        super().__init__(StageParams(), StageContext(run_dir=Path("."), stage_name="publisher"))
        self.paths, self.holds = tuple(paths), holds

    def publishes(self):
        return self.paths

    def publications_hold(self):
        return self.holds


def planned(name: str, input_name: str | None, stage: Stage, fingerprint: str = "f") -> PlannedStage:
    return PlannedStage(name, stage, input_name, (), fingerprint, {}, publishes=tuple(stage.publishes()))


def test_each_published_path_has_one_owner_outside_every_stage_folder(tmp_path):
    shards = tmp_path / "shards"
    nested_is_fine = [planned("tokenize", None, Publisher([shards])), planned("mix", "tokenize", Publisher([shards / "mix.json"]))]
    check_publications(nested_is_fine, tmp_path, "j.yaml")
    twice = [planned("tokenize", None, Publisher([shards])), planned("tokenize2", "tokenize", Publisher([shards]))]
    with pytest.raises(ConfigError, match="stages 'tokenize' and 'tokenize2' both publish"):
        check_publications(twice, tmp_path, "j.yaml")
    inside = [planned("seeds", None, Publisher()), planned("mix", "seeds", Publisher([tmp_path / "seeds" / "mix.json"]))]
    with pytest.raises(ConfigError, match="inside the folder of stage 'seeds'"):
        check_publications(inside, tmp_path, "j.yaml")


def test_two_tokenize_stages_cannot_publish_one_shard_folder(tmp_path):
    job = parse_job(
        {"name": "j", "stages": ["seeds", "tokenize", {"name": "tokenize2", "kind": "tokenize", "input": "seeds"}]},
        source="j.yaml",
    )
    with pytest.raises(ConfigError, match="stages 'tokenize' and 'tokenize2' both publish .*shards"):
        build_graph(job, STAGES, run_dir=tmp_path, prompt_hash=lambda template_id: "p")


@pytest.mark.parametrize(
    "mix_state, holds, withdrawn",
    [("stale", True, True), ("fresh", False, True), ("fresh", True, False)],
)
def test_a_rerun_withdraws_downstream_publications_that_no_longer_hold(tmp_path, mix_state, holds, withdrawn):
    mix_json = tmp_path / "shards" / "mix.json"
    mix_json.parent.mkdir()
    mix_json.write_text("{}")
    plan = [
        planned("seeds", None, Publisher()),
        planned("tokenize", "seeds", Publisher([tmp_path / "shards"])),
        planned("mix", "tokenize", Publisher([mix_json], holds=holds), fingerprint="mix-now"),
    ]
    StageDir(tmp_path, "mix").commit({"fingerprint": "mix-now" if mix_state == "fresh" else "mix-before"})

    assert withdraw_publications(plan, "mix", tmp_path, log=lambda line: None) == {}, "a stage never withdraws its own"
    result = withdraw_publications(plan, "tokenize", tmp_path, log=lambda line: None)
    assert result == ({"mix": [str(mix_json)]} if withdrawn else {})
    assert mix_json.exists() is not withdrawn
    assert (tmp_path / "shards").is_dir(), "what the stage that ran published stays"
