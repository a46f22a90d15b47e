"""The quality stage, run for real on Ray: heuristics, language id, on pairs and on seed text."""

import json

import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.quality.heuristics import count_words
from synthmix.stages.registry import STAGES
from tests.stages.answer_rows import answer_row, run_after_answers

PHOTOSYNTHESIS = (
    "Plants make their food by photosynthesis: chlorophyll in the leaves captures sunlight, and that energy turns "
    "water and carbon dioxide into glucose, releasing oxygen as a by-product."
)
PAIRS = [
    answer_row("good", "How do plants make their food?", PHOTOSYNTHESIS),
    answer_row("number", "What is 2 + 2?", "4"),
    answer_row("refusal", "Explain how a pin tumbler lock works.", "I'm sorry, but I can't help with that request."),
    answer_row("loop", "Describe your cat.", "My cat is very nice and my cat is very soft. " * 12),
    answer_row("spam", "Where can I read more about photosynthesis?", "Click here to subscribe to our newsletter for more science facts!"),
    answer_row(
        "french_answer",
        "How do plants make their food?",
        "Les plantes fabriquent leur nourriture par la photosynthèse : la chlorophylle des feuilles capte la lumière du "
        "soleil et transforme l'eau et le dioxyde de carbone en glucose.",
    ),
    answer_row("chinese", "植物是如何制造食物的？", "植物通过光合作用制造食物：叶子里的叶绿素吸收阳光，把水和二氧化碳变成葡萄糖和氧气。", lang="zh"),
]


@pytest.fixture(scope="module")
def pairs_run(tmp_path_factory, ray_session):
    result = run_after_answers(tmp_path_factory.mktemp("quality"), PAIRS, "quality", {"languages": ["en"]})
    return result.manifest, result.accepted, result.rejected


def test_good_pairs_are_kept_with_their_language_and_scores(pairs_run):
    _, accepted, _ = pairs_run
    row = accepted["good"]
    assert row["lang"] == "en" and row["lang_prob"] > 0.8
    scores = json.loads(row["heuristic_scores"])
    # Heuristics judge the answer alone, not the instruction joined to it.
    assert scores["words"] == count_words([PHOTOSYNTHESIS])[0] and scores["refusal_matches"] == 0
    assert row["quality_score"] is None  # no classifier configured


def test_a_short_answer_with_no_confident_language_is_not_rejected_as_lang(pairs_run):
    _, accepted, _ = pairs_run
    assert "number" in accepted


def test_refusals_loops_and_boilerplate_in_the_answer_are_rejected_by_their_rule(pairs_run):
    _, _, rejected = pairs_run
    assert rejected["refusal"]["reject_reason"] == "refusal"
    assert rejected["loop"]["reject_reason"] == "repetitive"
    assert "gram_frac=" in rejected["loop"]["reject_detail"]
    assert rejected["spam"]["reject_reason"] == "boilerplate"


def test_an_answer_in_another_language_than_its_instruction_is_rejected_as_lang(pairs_run):
    _, _, rejected = pairs_run
    detail = json.loads(rejected["french_answer"]["reject_detail"])
    assert rejected["french_answer"]["reject_reason"] == "lang"
    assert (detail["instruction_lang"], detail["answer_lang"]) == ("en", "fr")


def test_a_language_outside_the_allow_list_is_rejected_as_lang(pairs_run):
    _, _, rejected = pairs_run
    detail = json.loads(rejected["chinese"]["reject_detail"])
    assert rejected["chinese"]["reject_reason"] == "lang"
    assert detail["lang"] == "zh" and detail["allowed"] == ["en"]
    assert rejected["chinese"]["lang"] == "zh"  # scores are kept on rejects too


def test_every_pair_is_counted_once(pairs_run):
    manifest, accepted, rejected = pairs_run
    assert manifest["rows_in"] == len(PAIRS) == len(accepted) + len(rejected)
    assert manifest["rejected"] == {"refusal": 1, "repetitive": 1, "boilerplate": 1, "lang": 2}


# A right answer to a GSM8K probe, by Qwen2.5-Coder-0.5B in the quickstart: a worked solution
# restates its steps, so its 5-word repetition (0.19) passes web text's bound (0.15) only in math.
RIBBON = (
    "Marty has 100 centimeters of ribbon that he must cut into 4 equal parts. Each of the cut parts must be divided into 5 equal parts. "
    "How long will each final cut be?"
)
RIBBON_ANSWER = (
    "To determine the length of each final cut, we need to follow these steps:\n\n1. Calculate the total length of the ribbon divided into 4 "
    "equal parts.\n2. Divide the total length by 5 to find the length of each final cut.\n\n**Step 1: Calculate the total length of the ribbon "
    "divided into 4 equal parts.**\n\nMarty has 100 centimeters of ribbon and he needs to cut it into 4 equal parts. Therefore, the total length "
    "divided into 4 equal parts is:\n\\[ 100 \\text{ cm} \\div 4 = 25 \\text{ cm} \\]\n\n**Step 2: Divide the total length by 5 to find the "
    "length of each final cut.**\n\nNow, we need to divide the total length of 25 cm by 5:\n\\[ 25 \\text{ cm} \\div 5 = 5 \\text{ cm} \\]\n\n"
    "Thus, the length of each final cut is \\(\\boxed{5}\\) centimeters."
)


def test_a_domain_gets_its_own_repetition_bounds(tmp_path, ray_session):
    math_row = {**answer_row("math", RIBBON, RIBBON_ANSWER), "domain": "math"}
    general_row = answer_row("general", RIBBON, RIBBON_ANSWER)
    loop = {**answer_row("math_loop", "How does compound interest grow?", "The amount is multiplied by one plus the rate each year, " * 12), "domain": "math"}
    math_bounds = {"max_dup_ngram_frac": {5: 0.35}, "max_top_ngram_frac": {2: 0.3}}
    result = run_after_answers(tmp_path, [math_row, general_row, loop], "quality", {"domain_heuristics": {"math": math_bounds}})
    assert list(result.accepted) == ["math"]
    reasons = {row_id: (row["reject_reason"], row["reject_detail"]) for row_id, row in result.rejected.items()}
    assert reasons["general"][0] == "repetitive" and "dup_5gram_frac" in reasons["general"][1]
    assert reasons["math_loop"][0] == "repetitive"


def test_natural_seed_text_is_filtered_on_its_text_column(tmp_path, ray_session):
    sections = {"seeds": {"builtin": {"pydoc_topics": 4, "stdlib_modules": 0}}, "quality": {"languages": ["en"]}}
    job = parse_job({"name": "t", "run_dir": str(tmp_path / "run"), "stages": ["seeds", "quality"], **sections}, source="t.yaml")
    run_job(job, STAGES, job_dir=tmp_path, log=lambda line: None)
    stage_dir = StageDir(tmp_path / "run", "quality")
    accepted = [row for f in stage_dir.part_files() for row in pq.read_table(f).to_pylist()]
    rejected = [row for f in stage_dir.reject_files() for row in pq.read_table(f).to_pylist()]
    assert stage_dir.manifest()["rows_in"] == len(accepted) + len(rejected) > 0
    assert accepted, f"every pydoc chunk was rejected: {[row['reject_detail'] for row in rejected][:3]}"
    assert all(row["lang"] == "en" for row in accepted)
    assert all(json.loads(row["heuristic_scores"])["words"] > 20 for row in accepted)


def test_a_text_column_the_rows_lack_is_a_config_error(tmp_path, ray_session):
    with pytest.raises(ConfigError, match="text_column 'body'"):
        run_after_answers(tmp_path, PAIRS[:1], "quality", {"text_column": "body"})
