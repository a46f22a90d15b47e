import json
import subprocess
import sys

import pytest

from synthmix.pipeline.contracts import ConfigError
from synthmix.quality.benchmark_sets import load_gsm8k_test, load_humaneval
from synthmix.quality.instruction_checks import is_mostly_chinese
from synthmix.quality.probe_sets import (
    ARITHMETIC_ZH_TEMPLATES,
    arithmetic_zh_probes,
    draw_probes,
    gsm8k_probes,
    humaneval_probes,
    judge_answer,
    read_probe_file,
)

# Each template's answer, written again from its values: a generator bug shows as a mismatch.
RECOMPUTE = {
    "shopping_change": lambda v: v["paid"] - v["pencils"] * v["pencil_price"] - v["notebooks"] * v["notebook_price"],
    "orchard": lambda v: v["apple"] + (v["apple"] + v["more"]) * (1 + v["times"]),
    "road_trip": lambda v: v["distance"] - v["speed"] * (v["morning"] + v["afternoon"]),
    "reading": lambda v: v["pages"] - sum(v["first"] + day * v["more"] for day in range(v["days"])),
    "factory": lambda v: v["daily"] * (v["before"] + v["after"]) + v["more"] * v["after"],
    "bus_trip": lambda v: -(-v["classes"] * (v["students"] + v["teachers"]) // v["seats"]),
    "savings": lambda v: -(-(v["price"] - v["saved"]) // v["weekly"]),
    "fruit_shop": lambda v: v["boxes"] * v["per_box"] // 2 - v["second_day"],
}


def test_every_generated_answer_is_recomputed_from_the_numbers_in_the_question():
    probes = arithmetic_zh_probes(400, seed=7)
    assert {probe.origin["template"] for probe in probes} == set(ARITHMETIC_ZH_TEMPLATES) == set(RECOMPUTE)
    for probe in probes:
        values = probe.origin["values"]
        assert int(probe.reference) == RECOMPUTE[probe.origin["template"]](values) > 0, probe.question
        assert all(str(value) in probe.question for value in values.values()), probe.question
        assert is_mostly_chinese(probe.question) and probe.question.endswith("？")
        assert (probe.lang, probe.domain, probe.objective, probe.tests) == ("zh", "math", True, None)


def test_generated_problems_are_reproducible_and_a_larger_count_extends_them():
    first = arithmetic_zh_probes(30, seed=3)
    assert first == arithmetic_zh_probes(30, seed=3)
    assert arithmetic_zh_probes(60, seed=3)[:30] == first
    other = arithmetic_zh_probes(30, seed=4)
    assert [probe.question for probe in other] != [probe.question for probe in first]
    assert len({probe.id for probe in first + other}) == 60


def test_gsm8k_probes_carry_the_number_after_the_hashes_as_reference():
    probes = gsm8k_probes()
    assert len(probes) == 1319 and len({probe.id for probe in probes}) == 1319
    assert probes[0].reference == "18" and probes[0].question.startswith("Janet")
    finals = [problem.final_answer for problem in load_gsm8k_test()]
    with_commas = [index for index, final in enumerate(finals) if "," in final]
    assert with_commas, "the split has answers like 2,125"
    assert all(probes[index].reference == finals[index].replace(",", "") for index in with_commas)
    assert {(probe.domain, probe.lang, probe.objective) for probe in probes} == {("math", "en", True)}


def test_drawing_is_reproducible_and_a_larger_count_is_a_superset():
    probes = gsm8k_probes()
    drawn = draw_probes(probes, 100, seed=0)
    assert drawn == draw_probes(probes, 100, seed=0)
    assert {probe.key for probe in drawn} < {probe.key for probe in draw_probes(probes, 200, seed=0)}
    assert {probe.key for probe in drawn} != {probe.key for probe in draw_probes(probes, 100, seed=1)}
    assert [int(probe.key) for probe in drawn] == sorted(int(probe.key) for probe in drawn), "kept in file order"
    with pytest.raises(ValueError, match="has 1319"):
        draw_probes(probes, 2000, seed=0)


def run_python(source: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, timeout=60, check=False)


def test_humaneval_tests_pass_the_canonical_solution_and_fail_a_wrong_one():
    problems = {problem.task_id: problem for problem in load_humaneval()}
    probes = humaneval_probes()
    assert len(probes) == 164 and all(probe.reference is None and probe.domain == "code" for probe in probes)
    for probe in probes[:5]:
        problem = problems[probe.key]
        assert problem.prompt.strip() in probe.question
        assert run_python(problem.prompt + problem.canonical_solution + "\n" + probe.tests).returncode == 0
        wrong = problem.prompt + "    return None\n"
        assert run_python(wrong + "\n" + probe.tests).returncode != 0


def test_judging_reads_the_final_answer_however_it_is_written():
    assert judge_answer("So she makes 9 * 2 = 18 dollars.\n\\boxed{18}", "18")
    assert judge_answer("The total is $2,125.\n#### 2,125", "2125")
    assert judge_answer("所以答案是 \\boxed{44}。", "44")
    assert not judge_answer("The answer is 19.", "18")
    assert not judge_answer(None, "18")


def test_a_user_file_gives_answer_and_test_probes_with_defaults(tmp_path):
    path = tmp_path / "mine.jsonl"
    lines = [
        {"question": "What is 12 times 12?", "answer": 144},
        {"question": "一个长方形长8米、宽5米，面积是多少平方米？", "answer": "40平方米"},
        {"question": "Write add(a, b).", "tests": "assert add(2, 3) == 5\n"},
    ]
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines) + "\n", encoding="utf-8")
    english, chinese, code = read_probe_file(path, name="mine")
    assert (english.reference, english.domain, english.lang, english.objective) == ("144", "general", "en", True)
    assert (chinese.reference, chinese.lang) == ("40", "zh")
    assert (code.reference, code.tests, code.domain, code.objective) == (None, "assert add(2, 3) == 5\n", "code", False)
    assert [probe.origin["line"] for probe in (english, chinese, code)] == [1, 2, 3]
    assert read_probe_file(path, name="mine", domain="math")[0].domain == "math"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"answer": 3}', "no string field 'question'"),
        ('{"question": "Why?"}', "neither 'answer' nor 'tests'"),
        ('{"question": "Why?", "answer": "because the long explanation goes on and on for many more words than fit"}', "too long to compare"),
        ("not json", "not JSON"),
    ],
)
def test_a_line_that_cannot_be_a_probe_is_an_error_naming_it(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "1+1?", "answer": 2}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"bad.jsonl, line 2: .*{message}"):
        read_probe_file(path, name="bad")


def test_a_missing_probe_file_says_where_it_was_looked_for(tmp_path):
    with pytest.raises(ConfigError, match="no file at .*absent.jsonl"):
        read_probe_file(tmp_path / "absent.jsonl", name="absent")
