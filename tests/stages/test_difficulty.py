"""difficulty: rewrites are set against their parents on the answers the run gave both."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.graph import build_graph
from synthmix.pipeline.store import StageDir
from synthmix.stages.difficulty import evolved_from, summarize_changes, upstream_stages
from synthmix.stages.registry import STAGES

JOB = {
    "name": "t",
    "stages": ["seeds", "synthesize", "evolve", "answer", "gather_samples", "consistency", "critique", "difficulty"],
    "models": {"embedded": {"engine": "embedded", "model": "smollm2-135m"}},
}


def meta(parent: str | None, op: str = "") -> str:
    steps = [{"template_id": "synthesize/web"}]
    if parent:
        steps.append({"template_id": f"evolve/{op}", "operation": op, "evolved_from": parent})
    return json.dumps({"steps": steps})


def pair(instruction_id, samples, *, objective=True, op="", parent=None, accuracy=0.8):
    return {
        "id": f"pair-{instruction_id}",
        "parent_id": instruction_id,
        "instruction": f"instruction {instruction_id}",
        "evolution_op": op,
        "objective": objective,
        "samples": samples,
        "answer": samples[0],
        "meta": meta(parent, op),
        # As stages/critique.py writes them: the readings in `critique`, the deciding score beside.
        "critique": json.dumps({"signals": {"verdict": accuracy}, "score": accuracy}),
        "critique_score": accuracy,
    }


def write(run_dir, stage, rows, rejects=False):
    folder = StageDir(run_dir, stage).rejects_path if rejects else StageDir(run_dir, stage).path
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")


@pytest.fixture
def run(tmp_path):
    """A run whose parents p1..p4 were answered; c1 split its samples, c2 was judged less accurate,
    c3 agrees as its parent did with answers no longer, c4 was answered at length, c5's parent was
    never answered, k1 is a clarification (not checked)."""
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(JOB))
    pairs = [
        pair("p1", ["\\boxed{4}"] * 3),
        pair("c1", ["\\boxed{4}", "\\boxed{5}", "\\boxed{4}"], op="deepen", parent="p1"),
        pair("p2", ["x is 7. \\boxed{7}"] * 3, accuracy=0.9),
        pair("c2", ["x is 7. \\boxed{7}"] * 3, op="add_constraints", parent="p2", accuracy=0.5),
        pair("p3", ["\\boxed{9}"] * 3),
        pair("c3", ["\\boxed{9}"] * 3, op="concretize", parent="p3"),
        pair("p4", ["A short answer."], objective=False),
        pair("c4", ["A much longer answer that walks through the reasons step by step."], objective=False, op="reasoning", parent="p4"),
        pair("c5", ["\\boxed{1}"] * 3, op="deepen", parent="p5"),
        pair("k1", ["\\boxed{2}"] * 3, op="clarify", parent="p1"),
    ]
    write(tmp_path, "gather_samples", pairs)
    # The judge rejected two parents: p2 on another dimension (its accuracy score stands in the
    # reject), p3 unparsed (no score). Rewrites are measured against them all the same.
    kept = [row for row in pairs if row["parent_id"] not in ("p2", "p3")]
    write(tmp_path, "critique", kept)
    write(
        tmp_path,
        "critique",
        [{**row, "critique_score": None if row["parent_id"] == "p3" else row["critique_score"]} for row in pairs if row["parent_id"] in ("p2", "p3")],
        rejects=True,
    )
    return tmp_path, kept


def stage_in(run_dir, params=None):
    job = parse_job({**JOB, **({"difficulty": params} if params else {})}, source="t.yaml")
    return next(node.stage for node in build_graph(job, STAGES, run_dir=run_dir, job_dir=run_dir) if node.name == "difficulty")


def test_a_rewrite_no_measure_shows_harder_is_rejected_and_the_others_pass(run):
    run_dir, rows = run
    stage = stage_in(run_dir)
    stage.setup_on_driver()
    out = {row["parent_id"]: row for row in stage.transform(pa.Table.from_pylist(rows)).to_pylist()}
    verdict = {key: json.loads(row["meta"]).get("difficulty", {}).get("harder", "unchecked") for key, row in out.items()}
    assert verdict == {"p1": "unchecked", "c1": True, "c2": True, "c3": False, "p4": "unchecked", "c4": True, "c5": None, "k1": "unchecked"}
    assert [key for key, row in out.items() if row["reject_reason"]] == ["c3"]
    assert out["c3"]["reject_reason"] == "not_harder" and json.loads(out["c3"]["reject_detail"])["parent"] == "p3"
    record = json.loads(out["c1"]["meta"])["difficulty"]
    assert record["evidence"] == ["agreement"] and record["change"]["agreement"] == pytest.approx(-1 / 3)
    assert json.loads(out["c2"]["meta"])["difficulty"]["evidence"] == ["judged_accuracy"]
    assert json.loads(out["c4"]["meta"])["difficulty"]["evidence"] == ["answer_length"]
    assert json.loads(out["c5"]["meta"])["difficulty"]["why"] == "parent unanswered"


def test_a_longer_length_bar_leaves_a_longer_answer_not_harder(run):
    run_dir, rows = run
    stage = stage_in(run_dir, {"min_length_gain": 10.0})
    stage.setup_on_driver()
    out = {row["parent_id"]: row for row in stage.transform(pa.Table.from_pylist(rows)).to_pylist()}
    assert out["c4"]["reject_reason"] == "not_harder"


def test_the_summary_counts_verdicts_and_means_changes_per_operation():
    records = [
        ({"operation": "deepen", "harder": True, "change": {"agreement": -0.5, "judged_accuracy": 0.0, "answer_ratio": 1.5}}, True),
        ({"operation": "deepen", "harder": True, "change": {"agreement": -0.25, "judged_accuracy": -1.0, "answer_ratio": 1.1}}, True),
        ({"operation": "deepen", "harder": False, "change": {"agreement": 0.0, "judged_accuracy": 0.0, "answer_ratio": 1.0}}, False),
        ({"operation": "reasoning", "harder": None}, True),
    ]
    summary = summarize_changes(records)
    deepen = summary["deepen"]
    assert (deepen["checked"], deepen["harder"], deepen["not_harder"], deepen["unmeasured"]) == (3, 2, 1, 0)
    assert deepen["change_all"]["agreement"]["n"] == 3 and deepen["change_all"]["agreement"]["estimate"] == pytest.approx(-0.25)
    assert deepen["change_kept"]["agreement"]["estimate"] == pytest.approx(-0.375)
    assert deepen["change_kept"]["agreement"]["low"] < -0.375 < deepen["change_kept"]["agreement"]["high"]
    assert summary["all"]["checked"] == 4 and summary["reasoning"]["unmeasured"] == 1
    # Length ratios are summarised by their geometric mean, whose interval stays above zero.
    ratio = deepen["change_all"]["answer_ratio"]
    assert ratio["estimate"] == pytest.approx((1.5 * 1.1 * 1.0) ** (1 / 3), abs=1e-4) and 0 < ratio["low"] < ratio["estimate"] < ratio["high"]


def test_the_parent_is_the_one_the_last_evolve_step_names():
    assert evolved_from(meta("p1", "deepen")) == "p1"
    two_rounds = json.dumps({"steps": [{"evolved_from": "p0"}, {"model": "m"}, {"evolved_from": "p1"}, {"critique_score": 8}]})
    assert evolved_from(two_rounds) == "p1" and evolved_from(meta(None)) is None and evolved_from(None) is None


def test_upstream_stages_follow_inputs_nearest_first():
    job = parse_job({**JOB, "stages": [*JOB["stages"][:-1], {"name": "side", "kind": "quality", "input": "gather_samples"}, "difficulty"]})
    assert [name for name, _ in upstream_stages(job, "side")] == ["gather_samples", "answer", "evolve", "synthesize", "seeds"]
    assert upstream_stages(job, "difficulty")[0] == ("side", "quality")


def test_a_job_without_sampled_answers_upstream_is_refused(tmp_path):
    job = {"name": "t", "stages": ["seeds", "synthesize", "evolve", "difficulty"], "models": JOB["models"]}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    stage = next(node.stage for node in build_graph(parse_job(job), STAGES, run_dir=tmp_path, job_dir=tmp_path) if node.name == "difficulty")
    with pytest.raises(ConfigError, match="no 'gather_samples' stage is upstream"):
        stage.setup_on_driver()


def test_in_a_run_every_checked_rewrite_is_set_against_its_parent_and_counted(tmp_path, ray_session):
    """The recipe through the runner on a fake model whose answers and grades do not change with
    the request: no rewrite can be shown harder, so each checked one is rejected, and the
    manifest counts them per operation."""
    from synthmix.pipeline.runner import run_job
    from tests.pipeline.fake_chat_server import FakeChatServer, schema_reply

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": f"Topic {i}: binary search halves a sorted range at every step. " * 3}) + "\n" for i in range(6)))
    server = FakeChatServer(reply=schema_reply).start()
    try:
        job = parse_job(
            {
                "name": "difficulty",
                "run_dir": str(tmp_path / "run"),
                "models": {"fake": {"engine": "openai", "base_url": server.base_url, "model": "fake", "max_retries": 1, "timeout_s": 10}},
                "stages": JOB["stages"],
                "seeds": {"path": str(corpus)},
                "synthesize": {"model": "fake", "instructions_per_call": 2},
                "evolve": {"model": "fake", "operations": {"deepen": 1, "clarify": 1, "add_constraints": 0, "concretize": 0, "reasoning": 0}},
                "answer": {"routes": {"default": "fake"}},
                "critique": {"model": "fake", "min_score": 1},
            },
            source="t.yaml",
        )
        run_job(job, STAGES, job_dir=tmp_path, log=lambda line: None)
    finally:
        server.stop()
    run_dir = tmp_path / "run"
    stage_dir = StageDir(run_dir, "difficulty")
    rejects = [row for f in stage_dir.reject_files() for row in pq.read_table(f).to_pylist()]
    kept = [row for f in stage_dir.part_files() for row in pq.read_table(f).to_pylist()]
    assert rejects and all(row["evolution_op"] == "deepen" and row["reject_reason"] == "not_harder" for row in rejects)
    assert not [row for row in kept if row["evolution_op"] == "deepen"], "nothing shows a deepened instruction harder"
    assert any(row["evolution_op"] == "clarify" for row in kept) and any(not row["evolution_op"] for row in kept)
    summary = stage_dir.manifest()["extra"]["difficulty"]
    assert summary["deepen"]["checked"] == summary["deepen"]["not_harder"] == len(rejects)
    assert summary["deepen"]["change_all"]["answer_ratio"]["estimate"] == pytest.approx(1.0, abs=0.01)
