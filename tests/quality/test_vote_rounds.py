"""Drawing a vote's samples in rounds gives the verdict of drawing them all, with fewer samples.

The rules are checked against `synthmix.quality.voting.vote_answers` itself, over every outcome of small
votes: each sample an answer (three distinct ones), an unreadable reply, or a failure."""

import functools
import itertools

import pytest

from synthmix.quality.answer_extraction import extract_answer
from synthmix.quality.vote_rounds import planned_samples, samples_to_draw, vote_is_settled
from synthmix.quality.voting import vote_answers

FAILED = "failed"
# Replies whose canonical answers are three distinct values and one unreadable reply.
REPLIES = {
    "a": "The answer is \\boxed{7}.",
    "b": "The answer is \\boxed{8}.",
    "c": "The answer is \\boxed{9}.",
    "none": "This response rambles on at length and never commits to any value whatsoever, sadly.",
}
OUTCOMES = ("a", "b", "c", "none", FAILED)
AGREEMENTS = (1 / 3, 0.5, 0.6, 2 / 3, 0.75, 1.0)


def test_the_replies_stand_for_three_answers_and_an_unreadable_one():
    canonical = {name: extract_answer(reply) for name, reply in REPLIES.items()}
    assert canonical["none"] is None
    assert len({canonical["a"], canonical["b"], canonical["c"]} - {None}) == 3


@functools.cache
def verdict(outcomes, min_agreement):
    """What gather_samples and consistency make of one instruction's samples."""
    replies = [REPLIES[outcome] for outcome in outcomes if outcome != FAILED]
    if not replies:
        return ("no row",)
    if len(replies) == 1:
        return ("kept unvoted", replies[0])
    vote = vote_answers(replies, min_agreement=min_agreement)
    return ("kept", replies[vote.kept_index]) if vote.consistent else ("rejected",)


@functools.cache
def canonical(outcome):
    return extract_answer(REPLIES[outcome])


def canonical_answers(outcomes):
    return [canonical(outcome) for outcome in outcomes if outcome != FAILED]


@pytest.mark.parametrize("budget", [2, 3, 4, 5])
@pytest.mark.parametrize("min_agreement", AGREEMENTS)
def test_a_settled_vote_has_one_verdict_whatever_the_undrawn_samples_give(budget, min_agreement):
    for drawn in range(budget + 1):
        for prefix in itertools.product(OUTCOMES, repeat=drawn):
            settled = vote_is_settled(canonical_answers(prefix), remaining=budget - drawn, min_agreement=min_agreement)
            verdicts = {verdict(prefix + rest, min_agreement) for rest in itertools.product(OUTCOMES, repeat=budget - drawn)}
            # Settled exactly when the verdict can no longer change: never early, never late.
            assert settled == (len(verdicts) == 1), (prefix, budget, min_agreement, verdicts)


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("min_agreement", AGREEMENTS)
def test_drawing_in_rounds_ends_with_the_verdict_of_drawing_every_sample(budget, min_agreement):
    for outcomes in itertools.product(OUTCOMES, repeat=budget):
        drawn = 0
        while (target := samples_to_draw(canonical_answers(outcomes[:drawn]), drawn=drawn, budget=budget, min_agreement=min_agreement)) > drawn:
            drawn = target
        assert verdict(outcomes[:drawn], min_agreement) == verdict(outcomes, min_agreement), (outcomes, drawn)


def test_three_samples_at_agreement_0_6_draw_two_first_and_the_third_only_after_a_disagreement():
    assert samples_to_draw([], drawn=0, budget=3, min_agreement=0.6) == 2
    seven, eight = extract_answer(REPLIES["a"]), extract_answer(REPLIES["b"])
    assert samples_to_draw([seven, seven], drawn=2, budget=3, min_agreement=0.6) == 2
    assert samples_to_draw([seven, eight], drawn=2, budget=3, min_agreement=0.6) == 3
    # One of the two failed: the one valid answer cannot be voted on yet.
    assert samples_to_draw([seven], drawn=2, budget=3, min_agreement=0.6) == 3


def test_five_samples_at_agreement_0_6_draw_three_first_then_one_at_a_time():
    seven, eight = extract_answer(REPLIES["a"]), extract_answer(REPLIES["b"])
    assert samples_to_draw([], drawn=0, budget=5, min_agreement=0.6) == 3
    assert samples_to_draw([seven, seven, eight], drawn=3, budget=5, min_agreement=0.6) == 4


def test_unanimity_required_stops_at_the_first_disagreement():
    assert samples_to_draw([], drawn=0, budget=3, min_agreement=1.0) == 2
    seven, eight = extract_answer(REPLIES["a"]), extract_answer(REPLIES["b"])
    assert vote_is_settled([seven, eight], remaining=1, min_agreement=1.0)
    assert not vote_is_settled([seven, seven], remaining=1, min_agreement=1.0)


def test_rounds_draw_fewer_samples_than_the_budget_over_every_outcome():
    budget, min_agreement = 3, 0.6
    total = 0
    everything = list(itertools.product(OUTCOMES, repeat=budget))
    for outcomes in everything:
        drawn = 0
        while (target := samples_to_draw(canonical_answers(outcomes[:drawn]), drawn=drawn, budget=budget, min_agreement=min_agreement)) > drawn:
            drawn = target
        total += drawn
    # Two agreeing first samples (a a, b b, c c) spare the third, and so do two unreadable ones
    # (one more can make at most 1 of 3): 4 of the 25 first pairs.
    assert total == budget * len(everything) - 4 * len(OUTCOMES)


def test_the_round_under_way_is_finished_before_the_next_is_planned():
    """What a resumed run plans: rounds replayed from the first, each from the samples before it."""
    seven, eight, nine = (canonical(name) for name in "abc")
    # Five samples at 0.6 draw three first; a kill left sample 1 of them undrawn: that round again.
    assert planned_samples({0: seven, 2: seven}, set(), budget=5, min_agreement=0.6) == 3
    # Two of three agree: one more for the leader would settle it...
    assert planned_samples({0: seven, 1: seven, 2: eight}, set(), budget=5, min_agreement=0.6) == 4
    # ...a fourth that failed leaves it open, so the fifth is drawn; a fourth that disagreed too...
    assert planned_samples({0: seven, 1: seven, 2: eight}, {3}, budget=5, min_agreement=0.6) == 5
    assert planned_samples({0: seven, 1: seven, 2: eight, 3: eight}, set(), budget=5, min_agreement=0.6) == 5
    # ...while three different answers and a failure cannot reach three votes of five any more.
    assert planned_samples({0: seven, 1: eight, 2: nine}, {3}, budget=5, min_agreement=0.6) == 4
    # Three agreeing first samples settle it: a sample beyond them changes nothing.
    assert planned_samples({0: seven, 1: seven, 2: seven, 3: eight}, set(), budget=5, min_agreement=0.6) == 3
