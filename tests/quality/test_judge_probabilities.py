import math

import pytest

from synthmix.quality.judge_probabilities import expected_score, option_probabilities, yes_probability


def logs(**probabilities):
    return {token: math.log(p) for token, p in probabilities.items()}


def test_yes_probability_renormalises_over_the_yes_and_no_tokens():
    # Qwen's first token after "Reply Yes or No": the words in several spellings, plus other tokens.
    candidates = {"Yes": math.log(0.6), " yes": math.log(0.1), "No": math.log(0.2), "The": math.log(0.1)}
    assert yes_probability(candidates) == pytest.approx(0.7 / 0.9)


def test_a_token_counts_for_a_word_it_begins():
    assert yes_probability(logs(Y=0.3, N=0.1)) == pytest.approx(0.75)
    # "Not" is not "No", "Yeah" is not "yes": they are other words.
    assert yes_probability(logs(Not=0.5, Yeah=0.4, No=0.1)) == pytest.approx(0.0)


def test_chinese_yes_and_no_are_read_too():
    assert yes_probability(logs(**{"是": 0.8, "否": 0.2})) == pytest.approx(0.8)


def test_no_yes_or_no_among_the_candidates_is_unreadable_not_a_pass():
    assert yes_probability(logs(The=0.9, A=0.1)) is None
    assert yes_probability({}) is None


def test_expected_score_weighs_each_grade_by_its_probability():
    assert expected_score(logs(**{"5": 0.5, "4": 0.25, "1": 0.25, "x": 0.3}), (1, 2, 3, 4, 5)) == pytest.approx(0.5 * 5 + 0.25 * 4 + 0.25 * 1)
    assert expected_score(logs(**{"7": 1.0}), (1, 2, 3, 4, 5)) is None


def test_option_probabilities_match_whole_tokens_case_insensitively():
    options = option_probabilities(logs(A=0.2, b=0.6, Because=0.2), ["A", "B", "C"])
    assert options == pytest.approx({"A": 0.25, "B": 0.75, "C": 0.0})
    assert option_probabilities(logs(D=1.0), ["A", "B"]) is None
