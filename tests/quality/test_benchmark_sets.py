import pytest

from quality.benchmark_sets import load_benchmark_texts, load_humaneval


def test_humaneval_loads_all_problems_from_the_installed_package() -> None:
    problems = load_humaneval()
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0"
    assert problems[0].entry_point in problems[0].prompt
    assert problems[0].text == problems[0].prompt + problems[0].canonical_solution


def test_benchmark_texts_are_looked_up_by_name() -> None:
    assert load_benchmark_texts("humaneval") == [problem.text for problem in load_humaneval()]


def test_an_unknown_benchmark_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"known sets: \['humaneval'\]"):
        load_benchmark_texts("mmlu")
