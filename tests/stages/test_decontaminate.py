"""The decontaminate stage, run for real on Ray: HumanEval planted in longer text, user benchmark files."""

import json

import pytest

from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.graph import build_graph
from synthmix.quality.benchmark_sets import load_humaneval
from synthmix.quality.ngram_hashes import split_words
from tests.stages.answer_rows import REGISTRY, answer_row, run_after_answers

QUIZ = [
    {"question": "Which river flows through the city of Vienna and then on through Budapest before reaching the Black Sea?"},
    {"question": "Name the element whose atomic number is seventy nine and which has been used as money for thousands of years."},
]


def rows():
    problems = {problem.task_id: problem for problem in load_humaneval()}
    prompt = problems["HumanEval/0"].prompt
    solution = problems["HumanEval/12"].text
    # One word short of an n-gram: 12 normalised words shared with HumanEval/1.
    first_words = " ".join(split_words([problems["HumanEval/1"].prompt]).to_pylist()[0][:12])
    return [
        answer_row("prompt_in_instruction", f"Here is a task from my course, please solve it carefully:\n\n{prompt}\nThanks!", "def f(): pass"),
        answer_row(
            "solution_in_answer", "Write a function returning the longest string.", f"Sure. Here is one way to do it:\n{solution}\nThis runs in linear time."
        ),
        answer_row("quiz_in_answer", "Ask me a geography question.", "Here is one: " + QUIZ[0]["question"] + " Take your time."),
        answer_row("few_words", "Continue this code.", first_words + " and so on and so forth."),
        answer_row("clean", "How do plants make food?", "Plants use sunlight, water and carbon dioxide to make glucose and oxygen."),
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    root = tmp_path_factory.mktemp("decontaminate")
    (root / "quiz.jsonl").write_text("".join(json.dumps(item) + "\n" for item in QUIZ), encoding="utf-8")
    section = {"benchmarks": ["humaneval", {"name": "quiz", "path": "quiz.jsonl", "text_field": "question"}]}
    result = run_after_answers(root, rows(), "decontaminate", section)
    return result.manifest, result.accepted, result.rejected


def test_humaneval_prompts_and_solutions_planted_in_longer_text_are_rejected(run):
    _, _, rejected = run
    for row_id in ("prompt_in_instruction", "solution_in_answer"):
        detail = json.loads(rejected[row_id]["reject_detail"])
        assert rejected[row_id]["reject_reason"] == "contaminated"
        assert detail["benchmark"] == "humaneval" and detail["n"] == 13
        assert len(detail["ngram"].split()) == 13


def test_the_recorded_ngram_is_the_first_shared_one_in_reading_order(run):
    _, _, rejected = run
    ngram = json.loads(rejected["prompt_in_instruction"]["reject_detail"])["ngram"]
    assert ngram.startswith("from typing import list")


def test_a_user_jsonl_benchmark_is_checked_under_its_own_name(run):
    _, _, rejected = run
    detail = json.loads(rejected["quiz_in_answer"]["reject_detail"])
    assert detail["benchmark"] == "quiz" and "vienna" in detail["ngram"]


def test_clean_text_and_short_overlaps_are_kept_and_accounting_holds(run):
    manifest, accepted, rejected = run
    assert set(accepted) == {"few_words", "clean"}
    assert manifest["rows_in"] == 5 and manifest["rows_out"] == 2
    assert manifest["rejected"] == {"contaminated": 3} and len(rejected) == 3


def test_a_missing_benchmark_file_is_a_config_error_before_ray_starts(tmp_path):
    job = parse_job(
        {
            "name": "t",
            "stages": ["answer", "decontaminate"],
            "answer": {"path": "a.parquet"},
            "decontaminate": {"benchmarks": [{"name": "mine", "path": "absent.jsonl"}]},
        }
    )
    with pytest.raises(ConfigError, match="no file at .*absent.jsonl"):
        build_graph(job, REGISTRY, run_dir=tmp_path / "run", job_dir=tmp_path)
