import pytest

from synthmix.quality.benchmark_sets import load_benchmark_texts, load_gsm8k_test, load_humaneval
from synthmix.quality.decontamination import build_ngram_index, find_contamination


def test_humaneval_loads_all_problems_from_the_installed_package() -> None:
    problems = load_humaneval()
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0"
    assert problems[0].entry_point in problems[0].prompt
    assert problems[0].text == problems[0].prompt + problems[0].canonical_solution
    assert "def check(candidate)" in problems[0].test


def test_gsm8k_test_split_loads_every_problem_with_its_final_answer() -> None:
    problems = load_gsm8k_test()
    assert len(problems) == 1319
    assert [problem.row for problem in problems] == list(range(1319))
    assert problems[0].question.startswith("Janet’s ducks lay 16 eggs per day.")
    assert problems[0].final_answer == "18"
    assert all(problem.final_answer and "####" not in problem.final_answer for problem in problems)


def test_benchmark_texts_are_looked_up_by_name() -> None:
    assert load_benchmark_texts("humaneval") == [problem.text for problem in load_humaneval()]
    assert load_benchmark_texts("gsm8k") == [problem.question for problem in load_gsm8k_test()]


def test_a_gsm8k_test_question_inside_a_sample_is_found_as_gsm8k() -> None:
    questions = load_benchmark_texts("gsm8k")
    index = build_ngram_index({"humaneval": load_benchmark_texts("humaneval"), "gsm8k": questions})
    planted = f"Here is a practice problem for you. {questions[100]} Take your time and show every step."
    clean = "A farmer has some cows and some hens, and wants to know how many legs there are in the barn at noon."
    planted_match, clean_match = find_contamination([planted, clean], index)
    assert planted_match is not None and planted_match.benchmark == "gsm8k"
    assert clean_match is None


def test_an_unknown_benchmark_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known sets: \['gsm8k', 'humaneval'\]"):
        load_benchmark_texts("mmlu")
