import pyarrow as pa
import pytest

from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.fingerprint import code_version
from synthmix.pipeline.graph import build_graph, select_stages, stages_with_unreadable_inputs
from synthmix.pipeline.stage import Stage, StageParams
from synthmix.stages.seeds import Seeds


class ScoreParams(StageParams):
    threshold: float = 0.5
    batch_rows: int = 10


class Score(Stage):
    """A test stage that reads `text` and writes `score`."""

    name = "score"
    input_columns = ("text",)
    output_fields = (pa.field("score", pa.float64()),)
    params = ScoreParams
    prompts = ("score/default",)

    def transform(self, batch):
        return batch.append_column("score", pa.array([1.0] * batch.num_rows))


class NeedsAnswer(Stage):
    name = "needs_answer"
    input_columns = ("answer",)


REGISTRY = {"seeds": Seeds, "score": Score, "needs_answer": NeedsAnswer}


def build(tmp_path, data, prompt_hash=lambda template_id: "p1", code_hash=code_version):
    job = parse_job({"name": "j", **data}, source="j.yaml")
    return build_graph(job, REGISTRY, run_dir=tmp_path, job_dir=tmp_path, prompt_hash=prompt_hash, code_hash=code_hash)


def fingerprints(tmp_path, data, **kwargs):
    return {node.name: node.fingerprint for node in build(tmp_path, data, **kwargs)}


BASE = {"stages": ["seeds", "score", {"name": "score2", "kind": "score"}]}


def test_fingerprint_is_stable_for_the_same_job(tmp_path):
    assert fingerprints(tmp_path, BASE) == fingerprints(tmp_path, BASE)


def test_changing_a_stage_parameter_makes_it_and_downstream_stale_but_not_upstream(tmp_path):
    before = fingerprints(tmp_path, BASE)
    after = fingerprints(tmp_path, {**BASE, "score": {"threshold": 0.9}})
    assert after["seeds"] == before["seeds"]
    assert after["score"] != before["score"]
    assert after["score2"] != before["score2"]


def test_changing_a_downstream_parameter_leaves_upstream_fresh(tmp_path):
    before = fingerprints(tmp_path, BASE)
    after = fingerprints(tmp_path, {**BASE, "score2": {"threshold": 0.1}})
    assert after["score"] == before["score"] and after["score2"] != before["score2"]


def test_changing_a_prompt_file_changes_the_fingerprint(tmp_path):
    before = fingerprints(tmp_path, BASE)
    after = fingerprints(tmp_path, BASE, prompt_hash=lambda template_id: "p2")
    assert after["seeds"] == before["seeds"] and after["score"] != before["score"]


def test_changing_the_model_spec_of_an_unused_model_changes_nothing(tmp_path):
    before = fingerprints(tmp_path, BASE)
    after = fingerprints(tmp_path, {**BASE, "models": {"other": {"engine": "embedded", "batch_size": 8}}})
    assert after == before


def test_changing_the_run_directory_changes_nothing(tmp_path):
    assert fingerprints(tmp_path / "a", BASE) == fingerprints(tmp_path / "b", BASE)


def test_code_version_is_part_of_the_fingerprint(tmp_path):
    node = build(tmp_path, BASE)[1]
    assert node.fingerprint_parts["code"].startswith("0.1.0+")
    assert node.fingerprint_parts["code"] != build(tmp_path, BASE)[0].fingerprint_parts["code"]


def test_changing_a_stages_code_makes_it_and_downstream_stale_but_not_upstream(tmp_path):
    before = fingerprints(tmp_path, BASE)
    after = fingerprints(tmp_path, BASE, code_hash=lambda cls: "edited" if cls is Score else code_version(cls))
    assert after["seeds"] == before["seeds"]
    assert after["score"] != before["score"] and after["score2"] != before["score2"]


def test_missing_input_column_is_reported_before_anything_runs(tmp_path):
    with pytest.raises(ConfigError, match=r"stage 'needs_answer' needs column\(s\) answer, which no upstream stage writes"):
        build(tmp_path, {"stages": ["seeds", "needs_answer"]})


def test_carried_columns_reach_later_stages(tmp_path):
    order = build(tmp_path, BASE)
    assert "text" in order[2].columns and "score" in order[2].columns


@pytest.mark.parametrize(
    "flags, expected",
    [
        ({}, ["seeds", "score", "score2"]),
        ({"start": "score"}, ["score", "score2"]),
        ({"stop": "score"}, ["seeds", "score"]),
        ({"only": "score"}, ["score"]),
        ({"start": "score", "stop": "score"}, ["score"]),
    ],
)
def test_from_only_to_select_stages(tmp_path, flags, expected):
    assert [node.name for node in select_stages(build(tmp_path, BASE), **flags)] == expected


def test_unknown_selected_stage_lists_the_job_stages(tmp_path):
    with pytest.raises(ConfigError, match="--from answer: no such stage in this job; its stages are seeds, score, score2"):
        select_stages(build(tmp_path, BASE), start="answer")


def test_stages_whose_inputs_are_missing_here_are_named_and_so_are_those_reading_them(tmp_path):
    job = parse_job(
        {
            "name": "j",
            "stages": [
                {"name": "local", "kind": "seeds"}, "score",
                {"name": "builtin", "kind": "seeds"}, {"name": "score2", "kind": "score"},
                {"name": "score3", "kind": "score", "input": "score"},
            ],
            "local": {"path": "gone/*.jsonl", "use_builtin": False},
        },
        source="j.yaml",
    )  # fmt: skip
    undecided = stages_with_unreadable_inputs(job, REGISTRY, tmp_path / "run", tmp_path)
    assert list(undecided) == ["local", "score", "score3"]
    assert "'gone/*.jsonl' matches no file" in undecided["local"]
    assert undecided["score"] == undecided["score3"] == "it reads from stage 'local' (directly or through others), whose inputs are missing here"
