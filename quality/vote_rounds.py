"""Drawing a self-consistency vote's samples in rounds: stop once the samples not yet drawn can
no longer change its verdict.

The vote (`synthmix.quality.voting.vote_answers`, as the consistency stage applies it) keeps an
instruction when one canonical answer has the most votes, untied, and its share of the samples
reaches `min_agreement`. A sample that failed (no reply, an empty one) is not a vote at all; one
whose final answer cannot be read counts against agreement. An instruction left with one valid
sample passes unvoted, and one with none has no row.

After some samples are drawn, each sample still to draw may turn out to be any answer, an
unreadable one, or a failure. The verdict is *settled* when every such outcome gives the same
verdict as now: the same kept answer, or a rejection. Then the rest need not be drawn, and the
verdict is the one drawing all would give, given the same samples. Two extreme outcomes decide
it, so no enumeration is needed:

- kept, whatever comes: every remaining sample valid and voting for the runner-up still leaves
  the leader strictly ahead, with agreement `leader / (valid + remaining) >= min_agreement`;
- rejected, whatever comes: every remaining sample voting for the leader still falls short,
  `(leader + remaining) / (valid + remaining) < min_agreement`, or still only ties.

Failures only shrink the count, which raises agreement, so they never beat these extremes; but
with fewer than two valid samples a run of failures leaves the row unvoted, so nothing is settled
there until every sample is drawn. tests/quality/test_vote_rounds.py checks both rules against
`vote_answers` over every outcome of small votes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

# A stand-in for an answer no sample has given yet (canonical answers are never empty).
_FRESH = ""


def vote_is_settled(answers: Sequence[str | None], *, remaining: int, min_agreement: float) -> bool:
    """Whether the vote over all samples has the same verdict however the `remaining` undrawn
    samples turn out. `answers` are the canonical answers of the valid samples drawn so far
    (None where unreadable); failed samples are left out."""
    if remaining <= 0:
        return True
    valid = len(answers)
    if valid < 2:
        return False
    ranked = Counter(answer for answer in answers if answer is not None).most_common(2)
    leader = ranked[0][1] if ranked else 0
    runner_up = ranked[1][1] if len(ranked) > 1 else 0
    kept_whatever_comes = leader > runner_up + remaining and leader / (valid + remaining) >= min_agreement
    could_be_kept = (leader + remaining) / (valid + remaining) >= min_agreement and leader + remaining > runner_up
    return kept_whatever_comes or not could_be_kept


def samples_to_draw(answers: Sequence[str | None], *, drawn: int, budget: int, min_agreement: float) -> int:
    """How many samples the instruction should have drawn after the next round: `drawn` when its
    vote is settled (or the budget spent), else the fewest more that could settle it.

    `answers` are the valid samples' canonical answers among the `drawn` (failures left out). A
    fresh instruction (`drawn` 0) gets its first round: with `budget` 3 and `min_agreement` 0.6,
    two samples, since two agreeing answers settle it; two disagreeing ones get the third.
    """
    remaining = budget - drawn
    if vote_is_settled(answers, remaining=remaining, min_agreement=min_agreement):
        return drawn
    ranked = Counter(answer for answer in answers if answer is not None).most_common(2)
    leader = ranked[0][0] if ranked else _FRESH
    runner_up = ranked[1][0] if len(ranked) > 1 else _FRESH
    for more in range(1, remaining):
        # The outcomes of `more` samples that settle soonest: all for the leader (kept), all
        # unreadable or all for the runner-up (rejected).
        for outcome in (leader, None, runner_up):
            if vote_is_settled([*answers, *[outcome] * more], remaining=remaining - more, min_agreement=min_agreement):
                return drawn + more
    return budget


def planned_samples(answers: Mapping[int, str | None], failed: Collection[int], *, budget: int, min_agreement: float) -> int:
    """How many samples the instruction should have drawn by the end of the round under way,
    given the samples drawn so far: canonical answers of the valid ones by sample index, and the
    indexes of failed ones.

    Rounds are replayed from the first: each round's count is decided from the samples of the
    rounds before it only, and a round with a sample missing is the round under way. So a run
    that stopped part-way through a round, and resumed, finishes that same round and then plans
    from the same samples an uninterrupted run would have had.
    """
    drawn = 0
    while True:
        prefix = [answers[index] for index in range(drawn) if index in answers]
        target = samples_to_draw(prefix, drawn=drawn, budget=budget, min_agreement=min_agreement)
        if target == drawn or any(index not in answers and index not in failed for index in range(drawn, target)):
            return target
        drawn = target
