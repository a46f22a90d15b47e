"""synthmix.quality.judged_sets: responses whose verdict is certain by construction."""

import json
import random

import pytest

from synthmix.pipeline.contracts import ConfigError
from synthmix.quality.answer_extraction import extract_answer
from synthmix.quality.benchmark_sets import load_gsm8k_test
from synthmix.quality.judged_sets import alter_one_step, cut_mid_sentence, gsm8k_judged, humaneval_judged, mutants, read_judged_file, readable_solution
from synthmix.quality.sandbox import Outcome, SandboxLimits, run_sandboxed

JANET = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day at the farmer’s market.\n#### 18"


def test_the_reference_reads_as_a_person_writes_it():
    assert readable_solution(JANET) == "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer’s market.\nThe answer is 18."


def test_a_changed_step_is_carried_through_every_later_step():
    # Step 0 (16 - 3 - 4 = 9) is changed; step 1 then computes from the wrong value, and says so.
    for seed in range(20):
        text, step = alter_one_step(JANET, random.Random(seed))
        if step == 0:
            first, second, answer = text.splitlines()
            wrong = int(first.split("= ")[1].split()[0])
            assert wrong != 9
            assert second == f"She makes {wrong} * 2 = ${wrong * 2} every day at the farmer’s market."
            assert answer == f"The answer is {wrong * 2}."
            return
    pytest.fail("no seed changed the first step")


def test_every_altered_gsm8k_solution_ends_on_a_wrong_answer_or_shows_a_wrong_step():
    judged = gsm8k_judged(60, seed=0)
    by_problem = {}
    for row in judged:
        by_problem.setdefault(row.key.split("/")[0], {})[row.variant] = row
    problems = {str(p.row): p for p in load_gsm8k_test()}
    altered = [variants for variants in by_problem.values() if "altered_step" in variants]
    # Solutions with a calculation written without its calculator note cannot be redone here (9 of 60).
    assert len(altered) >= 45
    for variants in altered:
        reference, changed = variants["reference"], variants["altered_step"]
        assert reference.good and not changed.good
        assert reference.response != changed.response
        truth = problems[reference.key.split("/")[0]].final_answer.replace(",", "")
        assert extract_answer(reference.response) == truth
    finals_changed = sum(extract_answer(v["altered_step"].response) != extract_answer(v["reference"].response) for v in altered)
    assert finals_changed / len(altered) > 0.8


def test_sets_are_drawn_the_same_for_a_seed():
    assert gsm8k_judged(5, seed=3) == gsm8k_judged(5, seed=3)
    assert gsm8k_judged(5, seed=3) != gsm8k_judged(5, seed=4)


def test_mutants_change_one_token_of_the_body_only():
    prompt = 'def below(xs, limit):\n    """Count items < limit."""\n'
    body = "    return sum(1 for x in xs if x < limit and True)\n"
    found = list(mutants(prompt, body, random.Random(0)))
    assert {code.removeprefix(prompt) for code, _ in found} == {
        "    return sum(2 for x in xs if x < limit and True)\n",
        "    return sum(1 for x in xs if x <= limit and True)\n",
        "    return sum(1 for x in xs if x < limit or True)\n",
        "    return sum(1 for x in xs if x < limit and False)\n",
    }
    assert all(code.startswith(prompt) for code, _ in found)


def sandbox_passes(code: str, tests: str) -> bool:
    return run_sandboxed(code, tests, SandboxLimits()).outcome is Outcome.PASSED


def test_humaneval_mutants_fail_their_tests_and_canonical_solutions_pass():
    judged = humaneval_judged(4, seed=0, runner=sandbox_passes)
    tests = {row.origin["task_id"]: row for row in judged}
    assert {row.variant for row in judged} == {"canonical", "mutant"}
    for row in judged:
        code = row.response.removeprefix("```python\n").removesuffix("\n```")
        from synthmix.quality.benchmark_sets import load_humaneval

        problem = next(p for p in load_humaneval() if p.task_id == row.origin["task_id"])
        assert sandbox_passes(code, f"{problem.test}\n\ncheck({problem.entry_point})\n") is row.good
    assert tests


def test_a_cut_answer_stops_inside_a_sentence():
    answer = "Tuples cannot be changed after they are made. Lists can grow and shrink, so they suit collections that change over time."
    for seed in range(5):
        cut = cut_mid_sentence(answer, random.Random(seed))
        assert answer.startswith(cut) and len(cut) < len(answer) * 0.75
        assert not cut.endswith((".", ",", " "))
    chinese = "长城大多建于明朝，东起辽宁虎山，西至甘肃嘉峪关，是世界文化遗产。"
    assert chinese.startswith(cut_mid_sentence(chinese, random.Random(0)))


def test_a_users_judged_file_is_read_with_its_field_names(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"q": "2 + 2?", "r": "4", "ok": True}) + "\n" + json.dumps({"q": "首都？", "r": "上海", "ok": False}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    rows = read_judged_file(path, name="mine", question_field="q", response_field="r", good_field="ok")
    assert [(row.good, row.lang, row.key) for row in rows] == [(True, "en", "1"), (False, "zh", "2")]
    path.write_text(json.dumps({"q": "x", "r": "y", "ok": "yes"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1: 'ok' must be true or false"):
        read_judged_file(path, name="mine", question_field="q", response_field="r", good_field="ok")


def test_recorded_passages_give_a_good_answer_its_faults_and_the_models_own_mistakes():
    from synthmix.quality.judged_sets import passage_judged, read_passage_records

    records = {record["key"]: record for record in read_passage_records()}
    judged = passage_judged(seed=0)
    assert {row.lang for row in judged} == {"en", "zh"}
    for row in judged:
        record = records[row.key.rsplit("/", 1)[0]]
        assert row.passage == record["passage"] and row.question == record["question"]
        assert row.good == (row.variant == "supported")
        if row.variant == "supported":
            assert record["good"] and row.response == record["answer"]
        elif row.variant == "contradicted":
            assert row.response != record["answer"]
        elif row.variant == "cut_off":
            assert record["answer"].startswith(row.response) and len(row.response) < len(record["answer"])
        elif row.variant == "off_topic":
            assert row.response != record["answer"] and any(other["answer"] == row.response for other in records.values() if other["good"])
        elif row.variant == "model_error":
            assert not record["good"] and record["review"]
    # Every good record gives the six faults; a wrong one only itself.
    good = sum(record["good"] for record in records.values())
    assert sum(row.variant == "supported" for row in judged) == good >= 20
    assert sum(row.variant == "model_error" for row in judged) == len(records) - good >= 10
    assert passage_judged(5, seed=1) == passage_judged(5, seed=1)
