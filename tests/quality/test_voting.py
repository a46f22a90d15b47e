import pytest

from synthmix.quality.voting import vote_answers


def test_majority_reaching_the_threshold_is_consistent_and_keeps_a_majority_sample() -> None:
    samples = ["I get 41.", r"So \boxed{42}", "The answer is 42.", "Answer: 42", "The answer is 40."]
    vote = vote_answers(samples, min_agreement=0.6)
    assert vote.answers == ("41", "42", "42", "42", "40")
    assert vote.winner == "42"
    assert vote.counts == {"42": 3, "41": 1, "40": 1}
    assert vote.agreement == pytest.approx(0.6)
    assert vote.kept_index == 1
    assert vote.consistent


def test_majority_below_the_threshold_is_inconsistent() -> None:
    samples = ["Answer: 7", "Answer: 7", "Answer: 8", "Answer: 9", "Answer: 10"]
    vote = vote_answers(samples, min_agreement=0.6)
    assert vote.winner == "7"
    assert vote.agreement == pytest.approx(0.4)
    assert not vote.consistent


def test_a_tie_for_the_most_votes_is_inconsistent_and_reports_the_first_seen_answer() -> None:
    samples = ["Answer: B", "Answer: A", "Answer: A", "Answer: B"]
    vote = vote_answers(samples, min_agreement=0.5)
    assert vote.winner == "B"
    assert vote.kept_index == 0
    assert list(vote.counts) == ["B", "A"]
    assert not vote.consistent


def test_samples_without_an_answer_count_against_agreement() -> None:
    no_answer = "This response rambles on at length and never commits to any value whatsoever, sadly."
    vote = vote_answers(["Answer: 5", "Answer: 5", no_answer, no_answer], min_agreement=0.75)
    assert vote.answers[2] is None
    assert vote.counts == {"5": 2}
    assert vote.agreement == pytest.approx(0.5)
    assert not vote.consistent


def test_no_extractable_answer_at_all_gives_no_winner() -> None:
    rambling = "This response rambles on at length and never commits to any value whatsoever, sadly."
    vote = vote_answers([rambling, rambling], min_agreement=0.5)
    assert (vote.winner, vote.kept_index, vote.consistent, vote.counts) == (None, None, False, {})


def test_differently_written_equal_answers_vote_together() -> None:
    vote = vote_answers([r"\boxed{\frac{1}{2}}", "The answer is 0.5.", "答案是二分之一"], min_agreement=1.0)
    assert vote.counts == {"0.5": 3}
    assert vote.consistent


def test_agreeing_samples_in_different_markdown_decorations_are_consistent() -> None:
    samples = ["**Answer:** 12", "Answer: **12**", "Total: 5 + 7 = 12\n#### 12", "**答案：** 12", r"The final answer is $\boxed{12}$."]
    vote = vote_answers(samples, min_agreement=1.0)
    assert vote.answers == ("12",) * 5
    assert vote.consistent


@pytest.mark.parametrize("min_agreement", [0.0, 1.5, -0.1])
def test_agreement_threshold_outside_zero_to_one_is_a_config_error(min_agreement: float) -> None:
    with pytest.raises(ValueError, match="share of samples"):
        vote_answers(["Answer: 1"], min_agreement=min_agreement)


def test_a_missing_or_blank_sample_counts_against_agreement_and_does_not_stop_the_vote() -> None:
    vote = vote_answers(["Answer: 5", None, "", "The answer is five."], min_agreement=0.5)
    assert vote.answers == ("5", None, None, "5")
    assert vote.counts == {"5": 2} and vote.agreement == pytest.approx(0.5) and vote.consistent
