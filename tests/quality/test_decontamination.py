from pydoc_data.topics import topics

import pytest

from synthmix.quality.benchmark_sets import load_benchmark_texts
from synthmix.quality.decontamination import ContaminationMatch, build_ngram_index, find_contamination


@pytest.fixture(scope="module")
def humaneval_index():
    return build_ngram_index({"humaneval": load_benchmark_texts("humaneval")})


def _prose() -> list[str]:
    return [p for topic in topics.values() for p in topic.split("\n\n") if len(p.split()) > 30]


def test_humaneval_prompts_planted_in_longer_real_text_are_found(humaneval_index) -> None:
    prose = _prose()
    problems = load_benchmark_texts("humaneval")
    planted = [prose[i] + "\n\n" + problems[i * 7][:500] + "\n\n" + prose[i + 1] for i in range(20)]
    matches = find_contamination(planted, humaneval_index)
    assert all(isinstance(match, ContaminationMatch) and match.benchmark == "humaneval" for match in matches)
    assert all(len(match.ngram.split()) == 13 for match in matches)


def test_reformatted_benchmark_text_is_still_found(humaneval_index) -> None:
    prompt = load_benchmark_texts("humaneval")[0]
    reformatted = " ".join(prompt.upper().split()).replace("(", " ( ")
    [match] = find_contamination([reformatted], humaneval_index)
    assert match is not None
    assert match.ngram.startswith("from typing import list def has close elements")


def test_clean_real_text_is_not_flagged(humaneval_index) -> None:
    assert find_contamination(_prose(), humaneval_index) == [None] * len(_prose())


def test_the_matched_benchmark_is_named() -> None:
    shared = "one two three four five six seven eight nine ten eleven twelve thirteen"
    index = build_ngram_index({"alpha": ["nothing in common here at all"], "beta": [f"start {shared} end"]}, n=13)
    matches = find_contamination([f"prefix words {shared}", "unrelated text", None], index)
    assert matches == [ContaminationMatch(benchmark="beta", ngram=shared), None, None]


def test_a_shorter_ngram_size_finds_shorter_overlaps() -> None:
    index = build_ngram_index({"tiny": ["the quick brown fox jumps"]}, n=3)
    assert find_contamination(["a quick brown fox appeared"], index)[0] == ContaminationMatch("tiny", "quick brown fox")
    assert find_contamination(["a quick brown cat appeared"], index) == [None]


def test_an_empty_index_flags_nothing() -> None:
    assert find_contamination(["any text at all"], build_ngram_index({})) == [None]
