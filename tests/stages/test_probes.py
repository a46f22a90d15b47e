"""Probes through the recipe on Ray, with a fake OpenAI-compatible model that answers them right
or wrong by its request seed and a critic that knows the references: probes are answered,
voted on, critiqued, quality-checked and deduplicated, set aside by probe_exit, and never reach
decontaminate, tokenize or the shards; `synthmix eval` measures them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.cli import main
from synthmix.pipeline.config import ConfigError, load_job, parse_job
from synthmix.pipeline.contracts import INSTRUCTION_FIELDS
from synthmix.pipeline.graph import build_graph
from synthmix.pipeline.inspection.eval_view import render_eval
from synthmix.pipeline.inspection.evaluation import evaluate_run
from synthmix.pipeline.probe_rows import find_probe_leaks
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.quality.benchmark_sets import load_humaneval
from synthmix.quality.judged_sets import gsm8k_judged, humaneval_judged, read_judged_file
from synthmix.quality.probe_sets import (
    arithmetic_zh_probes,
    draw_probes,
    gsm8k_probes,
    humaneval_probes,
    judge_answer,
    read_probe_file,
)
from synthmix.quality.sandbox import Outcome, SandboxLimits, run_sandboxed
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_chat_server import FakeChatServer
from tests.stages.answer_rows import ParquetRows


def QUIET(line: str) -> None:
    """A runner log that prints nothing."""


SEED = 5
PROBES = {"seed": SEED, "gsm8k": 4, "arithmetic_zh": 3, "humaneval": 2, "files": [{"name": "mine", "path": "mine.jsonl"}]}
JUDGED = {"seed": SEED, "gsm8k": 3, "humaneval": 2, "files": [{"name": "mine_judged", "path": "judged.jsonl"}]}
USER_JUDGED = [
    {"question": "What is 7 times 8?", "response": "7 times 8 is 56.", "good": True},
    {"question": "What is 7 times 8?", "response": "7 times 8 is 54.", "good": False},
]
USER_PROBES = [
    {"question": "A box holds 12 eggs. How many eggs are in 7 boxes?", "answer": 84},
    {"question": "Write a Python function add(a, b) that returns the sum of its arguments.", "tests": "assert add(2, 3) == 5\n"},
]
INSTRUCTIONS = [
    "Explain why the sky looks blue on a clear afternoon, in plain words for a curious child.",
    "Describe how a bicycle gear system lets a rider climb steep hills with less effort.",
    "Summarise what a compiler does to a program before the program can run on a computer.",
]
CRITIQUE = re.compile(r"Question:\n<<<\n(.*)\n>>>\n\nResponse:\n<<<\n(.*)\n>>>\n\nIs this response correct", re.DOTALL)


class InstructionRows(ParquetRows):
    name = "instructions"
    output_fields = INSTRUCTION_FIELDS


REGISTRY = {**STAGES, "instructions": InstructionRows}


def instruction_rows() -> list[dict]:
    return [
        {
            contracts.ID: f"instruction-{index}",
            contracts.SEED_ID: f"seed-{index}",
            contracts.PARENT_ID: f"seed-{index}",
            contracts.SOURCE: "test",
            contracts.DOMAIN: "general",
            contracts.LANG: "en",
            contracts.INSTRUCTION: text,
            contracts.TASK_TYPE: "explanation",
            contracts.OBJECTIVE: False,
            contracts.EVOLUTION_OP: "",
            contracts.EVOLUTION_DEPTH: 0,
        }
        for index, text in enumerate(INSTRUCTIONS)
    ]


class ProbeModel:
    """Answers a probe right when its request seed is not a multiple of 3, else with a wrong number
    that depends on the seed (so wrong samples rarely agree), and a code probe with the code it is
    given; says a pair is correct when its final answer is right, or when it is no probe, else not."""

    def __init__(self, references: dict[str, str], code: dict[str, str], verdicts: dict[str, bool] | None = None) -> None:
        self.references = references
        self.code = code
        # Judged responses: the critic knows their verdicts too.
        self.verdicts = verdicts or {}

    def __call__(self, body: dict) -> str:
        user = body["messages"][-1]["content"]
        judged = CRITIQUE.search(user)
        if judged is not None:
            instruction, answer = judged.groups()
            if answer in self.verdicts:
                return "Yes" if self.verdicts[answer] else "No"
            reference = self.references.get(instruction)
            return "Yes" if reference is None or judge_answer(answer, reference) else "No"
        reference = self.references.get(user)
        if user in self.code:
            return f"Here is the function, with the imports it needs:\n\n```python\n{self.code[user]}\n```\nIt handles the edge cases too."
        if reference is None:
            return (
                f"Here is a careful answer. {user} The short version: it follows from a few simple rules, "
                "each of which can be checked by hand, and the example below shows them at work.\n\n```python\nprint('ok')\n```"
            )
        seed = body["seed"]
        value = reference if seed % 3 else str(int(reference) + 1 + seed % 7)
        if re.search(r"[\u4e00-\u9fff]", user):
            return f"我们一步一步地解这道题。{user} 先找出题目中的数量，再算出每一步的结果并检查。所以答案是 \\boxed{{{value}}}。"
        return f"Let us solve it step by step. {user} We compute each quantity in turn and check it. The final answer is \\boxed{{{value}}}."


def code_answers(probes) -> dict[str, str]:
    """HumanEval's own solutions, which pass their tests, and a wrong add() for the user's probe."""
    problems = {problem.task_id: problem for problem in load_humaneval()}
    answers = {probe.question: problems[probe.key].prompt + problems[probe.key].canonical_solution for probe in probes if probe.set_name == "humaneval"}
    answers[USER_PROBES[1]["question"]] = "def add(a, b):\n    return a - b\n"
    return answers


def drawn_probes(root: Path):
    return [
        *draw_probes(gsm8k_probes(), 4, seed=SEED),
        *draw_probes(humaneval_probes(), 2, seed=SEED),
        *arithmetic_zh_probes(3, seed=SEED),
        *read_probe_file(root / "mine.jsonl", name="mine"),
    ]


RECIPE = [
    "instructions", "probes", "answer", "gather_samples", "consistency", "verify_code", "judged_responses", "critique", "quality",
    {"name": "dedup_samples", "kind": "dedup"}, "probe_exit", "decontaminate", "tokenize",
]  # fmt: skip


def recipe_job(root: Path, base_url: str, *, stages: list = RECIPE) -> dict:
    """The job data, with the sections of the listed stages only."""
    listed = {stage if isinstance(stage, str) else stage["name"] for stage in stages}
    sections = {name: section for name, section in stage_sections().items() if name in listed}
    return {
        "name": "probes",
        "run_dir": str(root / "run"),
        "ray": {"num_cpus": 2},
        "models": {"fake": {"engine": "openai", "base_url": base_url, "model": "fake", "max_retries": 0}},
        "stages": stages,
        **sections,
    }


def stage_sections() -> dict:
    return {
        "instructions": {"path": "instructions.parquet"},
        "probes": PROBES,
        "judged_responses": JUDGED,
        "answer": {"routes": {"default": "fake"}, "samples": 3},
        "consistency": {"min_agreement": 0.6},
        # judge_rejected: the altered GSM8K solutions fail the arithmetic check, and the verdict's
        # AUC should still cover every judged row.
        "critique": {"model": "fake", "signals": ["verdict"], "judge_rejected": True},
        "quality": {"languages": ["en", "zh"]},
        "dedup_samples": {"text_columns": ["instruction", "answer"], "threshold": 0.8, "score_column": "critique_score"},
        "decontaminate": {"benchmarks": ["humaneval", "gsm8k"]},
        "tokenize": {"render": {"template": "plain", "loss_mask": True}},
    }


def write_inputs(root: Path) -> None:
    pq.write_table(pa.Table.from_pylist(instruction_rows(), schema=pa.schema(INSTRUCTION_FIELDS)), root / "instructions.parquet")
    (root / "mine.jsonl").write_text("".join(json.dumps(line) + "\n" for line in USER_PROBES), encoding="utf-8")
    (root / "judged.jsonl").write_text("".join(json.dumps(line) + "\n" for line in USER_JUDGED), encoding="utf-8")


def drawn_judged(root: Path):
    passes = lambda code, tests: run_sandboxed(code, tests, SandboxLimits()).outcome is Outcome.PASSED  # noqa: E731
    return [
        *gsm8k_judged(3, seed=SEED),
        *humaneval_judged(2, seed=SEED, runner=passes),
        *read_judged_file(root / "judged.jsonl", name="mine_judged"),
    ]


def rows(run_dir: Path, stage: str, *, rejects: bool = False) -> list[dict]:
    stage_dir = StageDir(run_dir, stage)
    return [row for path in (stage_dir.reject_files() if rejects else stage_dir.part_files()) for row in pq.read_table(path).to_pylist()]


def probe_rows(run_dir: Path, stage: str, *, rejects: bool = False) -> list[dict]:
    return [row for row in rows(run_dir, stage, rejects=rejects) if row.get(contracts.PROBE) is not None]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("probes")
    write_inputs(root)
    probes = drawn_probes(root)
    verdicts = {judged.response: judged.good for judged in drawn_judged(root)}
    server = FakeChatServer(reply=ProbeModel({probe.question: probe.reference for probe in probes if probe.reference}, code_answers(probes), verdicts)).start()
    try:
        job = parse_job(recipe_job(root, server.base_url), source="probes.yaml")
        run_job(job, REGISTRY, job_dir=root, log=QUIET)
        again = run_job(job, REGISTRY, job_dir=root, log=QUIET)
    finally:
        server.stop()
    return root / "run", probes, again


def test_probes_join_the_instructions_with_stable_ids_and_a_marker(recipe):
    run_dir, probes, _ = recipe
    written = probe_rows(run_dir, "probes")
    assert sorted(row[contracts.ID] for row in written) == sorted(probe.id for probe in probes)
    assert len(probes) == 4 + 2 + 3 + 2
    assert {row[contracts.ID] for row in rows(run_dir, "probes")} >= {row[contracts.ID] for row in instruction_rows()}, "instructions carried"
    by_id = {probe.id: probe for probe in probes}
    for row in written:
        marker, probe = json.loads(row[contracts.PROBE]), by_id[row[contracts.ID]]
        assert (marker["set"], marker["reference"], row[contracts.TESTS]) == (probe.set_name, probe.reference, probe.tests)
        assert (row[contracts.INSTRUCTION], row[contracts.OBJECTIVE], row[contracts.SEED_ID]) == (probe.question, probe.objective, probe.id)
    manifest = StageDir(run_dir, "probes").manifest()
    assert manifest["rows_in"] == manifest["rows_out"] == len(INSTRUCTIONS) + len(probes)
    assert manifest["extra"]["probes"] == {"arithmetic_zh": 3, "gsm8k": 4, "humaneval": 2, "mine": 2}


def test_a_rerun_of_the_same_job_finds_every_stage_fresh(recipe):
    _, _, again = recipe
    assert {outcome.action for outcome in again} == {"skipped"}


def test_objective_probes_are_sampled_k_times_by_the_routed_model(recipe):
    run_dir, probes, _ = recipe
    samples = probe_rows(run_dir, "answer")
    per_probe = {probe.id: sum(row[contracts.PARENT_ID] == probe.id for row in samples) for probe in probes}
    assert per_probe == {probe.id: 3 if probe.objective else 1 for probe in probes}
    assert {row[contracts.ANSWER_MODEL] for row in samples} == {"fake"}


def test_every_filter_judges_probes_like_any_pair(recipe):
    run_dir, _, _ = recipe
    for stage in ("consistency", "verify_code", "critique", "quality", "dedup_samples"):
        manifest = StageDir(run_dir, stage).manifest()
        assert manifest["rows_in"] == manifest["rows_out"] + manifest["rows_rejected"]
        assert probe_rows(run_dir, stage) or probe_rows(run_dir, stage, rejects=True), f"{stage} saw no probe"
    assert probe_rows(run_dir, "critique", rejects=True), "the critic rejects the wrong answers"
    [failed] = probe_rows(run_dir, "verify_code", rejects=True)
    assert (failed[contracts.INSTRUCTION], failed[contracts.REJECT_REASON]) == (USER_PROBES[1]["question"], "tests_failed")
    passed = [row for row in probe_rows(run_dir, "verify_code") if row[contracts.DOMAIN] == "code"]
    assert len(passed) == 2 and all(json.loads(row[contracts.META])["verify_code"]["outcome"] == "passed" for row in passed)
    rejected = probe_rows(run_dir, "critique", rejects=True)
    assert {row[contracts.REJECT_REASON] for row in rejected} == {"critique_low", "wrong_arithmetic"}
    # A miscalculation is the check's to reject, and the (knowing) judge scored it low as well.
    assert all(row[contracts.CRITIQUE_SCORE] == 0.0 for row in rejected if row[contracts.REJECT_REASON] == "wrong_arithmetic")


def test_probe_exit_sets_every_surviving_probe_aside_and_none_reaches_the_shards(recipe):
    run_dir, probes, _ = recipe
    arriving = {row[contracts.ID] for row in probe_rows(run_dir, "dedup_samples")}
    set_aside = probe_rows(run_dir, "probe_exit", rejects=True)
    assert arriving and {row[contracts.ID] for row in set_aside} == arriving
    assert {row[contracts.REJECT_REASON] for row in set_aside} == {"probe"}
    assert not probe_rows(run_dir, "probe_exit"), "no probe among the rows that go on"
    for stage in ("decontaminate", "tokenize"):
        assert not probe_rows(run_dir, stage) and not probe_rows(run_dir, stage, rejects=True)
    shards = [pq.read_table(path) for path in sorted((run_dir / "shards").glob("*.parquet"))]
    shard_seeds = {seed for table in shards for seed in table[contracts.SEED_ID].to_pylist()}
    assert shard_seeds, "the ordinary instructions reach the shards, so the check means something"
    assert not shard_seeds & {probe.id for probe in probes}
    assert shard_seeds <= {row[contracts.SEED_ID] for row in instruction_rows()}


def test_eval_measures_the_run(recipe, capsys):
    run_dir, probes, _ = recipe
    result = evaluate_run(run_dir)
    assert result["probes"] == len(probes) and "probe_exit" in result["survivors_are"]
    critique = next(entry for entry in result["filters"] if entry["stage"] == "critique")
    assert critique["precision"]["k"] == critique["precision"]["n"] > 0, "a critic that knows the references rejects only wrong answers"
    assert critique["kept_accuracy"]["k"] == critique["kept_accuracy"]["n"]
    assert result["critique_auc"]["estimate"] == 1.0
    math = next(entry for entry in result["by_model_domain"] if entry["domain"] == "math")
    assert math["survivors"]["k"] == math["survivors"]["n"] > 0, "every wrong answer was filtered out"
    assert math["samples"]["k"] < math["samples"]["n"], "some sampled answers were wrong"
    code = next(entry for entry in result["by_model_domain"] if entry["domain"] == "code")
    assert (code["samples"]["k"], code["samples"]["n"], code["not_judged"]) == (2, 3, 0), "HumanEval's solutions pass their tests, add() fails"

    assert main(["eval", str(run_dir)]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^fake\s+math\s+7\s", printed, re.MULTILINE), printed
    assert re.search(r"^critique\s", printed, re.MULTILINE) and "critique_score AUC (critique, right vs wrong answers): 1.000" in printed
    print(printed)  # the table, for a reader running the test with -s


def test_the_report_shows_the_probes_section(recipe, tmp_path):
    from synthmix.pipeline.inspection.report import build_report

    run_dir, probes, _ = recipe
    html = build_report(run_dir, {})
    assert "<h2>Probes</h2>" in html and f"{len(probes)} probes with known answers" in html


def test_a_job_that_would_ship_probes_is_refused_before_a_probe_is_written(tmp_path, ray_session):
    write_inputs(tmp_path)
    job = parse_job(recipe_job(tmp_path, "http://127.0.0.1:1/v1", stages=["instructions", "probes", "tokenize"]), source="leaky.yaml")
    with pytest.raises(ConfigError, match=r"stage\(s\) tokenize would read the probes of 'probes'.*list `- probe_exit`"):
        run_job(job, REGISTRY, job_dir=tmp_path, log=QUIET)
    assert not probe_rows(tmp_path / "run", "probes")


def test_probes_are_added_to_an_empty_input_and_probe_source_feeds_probe_exit(tmp_path, ray_session):
    write_inputs(tmp_path)
    pq.write_table(pa.schema(INSTRUCTION_FIELDS).empty_table(), tmp_path / "instructions.parquet")
    job = parse_job(recipe_job(tmp_path, "http://127.0.0.1:1/v1", stages=["instructions", "probes", "probe_exit"]), source="empty.yaml")
    run_job(job, REGISTRY, job_dir=tmp_path, log=QUIET)
    assert len(probe_rows(tmp_path / "run", "probes")) == len(drawn_probes(tmp_path))
    assert len(probe_rows(tmp_path / "run", "probe_exit", rejects=True)) == len(drawn_probes(tmp_path))

    alone = {
        **recipe_job(tmp_path, "http://127.0.0.1:1/v1", stages=[{"name": "probes", "kind": "probe_source"}, "probe_exit"]),
        "run_dir": str(tmp_path / "alone"),
    }
    run_job(parse_job(alone, source="alone.yaml"), REGISTRY, job_dir=tmp_path, log=QUIET)
    assert sorted(row[contracts.ID] for row in probe_rows(tmp_path / "alone", "probes")) == sorted(
        row[contracts.ID] for row in probe_rows(tmp_path / "run", "probes")
    )
    assert StageDir(tmp_path / "alone", "probe_exit").manifest()["rejected"] == {"probe": len(drawn_probes(tmp_path))}


def leaks(stages: list) -> list[str]:
    return find_probe_leaks(parse_job({"name": "j", "stages": stages}, source="j.yaml"), "probes")


def test_a_training_stage_reading_probes_without_an_exit_is_a_leak():
    assert leaks(["seeds", "probes", "answer", "decontaminate", "tokenize", "mix"]) == ["decontaminate", "tokenize", "mix"]
    assert leaks(["seeds", "probes", "answer", "probe_exit", "decontaminate", "tokenize", "mix"]) == []
    # A branch that reads around the exit leaks; a second source does not carry probes.
    assert leaks(["seeds", "probes", "answer", "probe_exit", {"name": "tokenize_raw", "kind": "tokenize", "input": "answer"}]) == ["tokenize_raw"]
    assert leaks(["seeds", "probes", "answer", "probe_exit", {"name": "more", "kind": "seeds"}, "tokenize"]) == []


def test_a_probes_section_without_probes_or_with_a_clashing_name_is_refused(tmp_path):
    for section, message in (({}, "no probes asked for"), ({"files": [{"name": "gsm8k", "path": "x.jsonl"}]}, "reuse a built-in set's name")):
        job = parse_job({"name": "j", "stages": ["seeds", "probes"], "probes": section}, source="j.yaml")
        with pytest.raises(ConfigError, match=message):
            build_graph(job, STAGES, run_dir=tmp_path, job_dir=tmp_path)


def test_the_benchmark_job_plans_with_enough_gsm8k_probes(tmp_path):
    path = Path(__file__).resolve().parents[2] / "jobs" / "eval.yaml"
    job = load_job(path)
    plan = build_graph(job, STAGES, run_dir=tmp_path, job_dir=path.parent)
    kinds = [node.fingerprint_parts["kind"] for node in plan]
    assert kinds[0] == "probe_source" and kinds[-1] == "probe_exit"
    assert {"answer", "consistency", "critique", "quality", "dedup"} <= set(kinds)
    assert plan[0].stage.params.gsm8k >= 100 and next(node for node in plan if node.name == "answer").stage.params.samples == 3
    assert not find_probe_leaks(job, plan[0].name)


def judged_rows(run_dir: Path, stage: str, *, rejects: bool = False) -> list[dict]:
    return [row for row in probe_rows(run_dir, stage, rejects=rejects) if "good" in json.loads(row[contracts.PROBE])]


def test_judged_responses_skip_the_answer_and_leave_at_probe_exit(recipe):
    run_dir, _, _ = recipe
    drawn = drawn_judged(run_dir.parent)
    assert {row[contracts.ID] for row in judged_rows(run_dir, "judged_responses")} == {judged.id for judged in drawn}
    assert len({judged.variant for judged in drawn}) == 5  # reference, altered_step, canonical, mutant, user
    assert not judged_rows(run_dir, "answer") and not judged_rows(run_dir, "consistency")
    # A judged response's answer is its fixed response, and its marker says whether it is good.
    for row in judged_rows(run_dir, "judged_responses"):
        marker = json.loads(row[contracts.PROBE])
        assert row[contracts.ANSWER] == row[contracts.SAMPLES][0] and marker["judged_by"] == "verdict"
    reached = {row[contracts.ID] for row in judged_rows(run_dir, "dedup_samples")}
    assert reached and reached == {row[contracts.ID] for row in judged_rows(run_dir, "probe_exit", rejects=True)}
    assert not judged_rows(run_dir, "decontaminate") and not judged_rows(run_dir, "tokenize")
    assert StageDir(run_dir, "judged_responses").manifest()["extra"]["probes"] == {"gsm8k_judged": 6, "humaneval_judged": 4, "mine_judged": 2}


def test_eval_measures_the_critic_on_the_judged_responses_per_set(recipe):
    run_dir, _, _ = recipe
    result = evaluate_run(run_dir)
    [critic] = result["critics"]
    assert critic["stage"] == "critique" and critic["signals"] == ["verdict", "critique_score", "stage"]
    # A critic that knows every verdict separates them perfectly, in every set.
    for group in ("all", "gsm8k_judged", "humaneval_judged", "mine_judged"):
        assert critic["auc"][group]["verdict"]["estimate"] == 1.0, group
    assert critic["auc"]["mine_judged"]["good"] == 1 and critic["auc"]["mine_judged"]["bad"] == 1
    at_half = next(entry for entry in critic["thresholds"] if entry["min_score"] == 0.5)
    assert at_half["precision"]["k"] == at_half["precision"]["n"] == at_half["recall"]["n"]
    judged_critique = next(entry for entry in result["judged_filters"] if entry["stage"] == "critique")
    assert judged_critique["verdict"] == "helps" and judged_critique["kept_accuracy"]["p"] == 1.0
    # Judged responses stay out of the answered probes' tables.
    probes_critique = next(entry for entry in result["filters"] if entry["stage"] == "critique")
    assert probes_critique["in"] == len(probe_rows(run_dir, "critique")) + len(probe_rows(run_dir, "critique", rejects=True)) - 12
    assert "Critique 'critique' on" in render_eval(result) and "mine_judged" in render_eval(result)
