"""Self-consistency voting: several answers sampled for one instruction agree, or the pair is dropped."""

from collections import Counter
from dataclasses import dataclass

from synthmix.quality.answer_extraction import extract_answer


@dataclass(frozen=True)
class Vote:
    """Outcome of a vote over k sampled responses.

    `answers[i]` is sample i's canonical answer (None where none could be extracted). `counts` maps
    each answer to its votes, most votes first, ties in order of first appearance. `agreement` is the
    winner's votes over all k samples, unextractable ones included, so a sample that states no answer
    counts against consistency. `kept_index` is the first sample that gave the winning answer.
    """

    answers: tuple[str | None, ...]
    counts: dict[str, int]
    winner: str | None
    agreement: float
    kept_index: int | None
    consistent: bool


def vote_answers(samples: list[str | None], *, min_agreement: float) -> Vote:
    """Vote over the canonical answers of `samples` (see `synthmix.quality.answer_extraction.extract_answer`);
    a missing (None) or blank sample has no answer and counts against agreement.

    Consistent when a single answer has the most votes and its share of the k samples reaches
    `min_agreement`. A tie for the most votes is never consistent: there is no majority to keep. The
    winner of a tie is still reported, deterministically the one that appeared first.
    """
    if not 0.0 < min_agreement <= 1.0:
        raise ValueError(f"min_agreement {min_agreement} is outside (0, 1]; it is the share of samples that must agree, e.g. 0.6 for 3 of 5")
    answers = tuple(extract_answer(sample) for sample in samples)
    first_seen = {answer: index for index, answer in reversed(list(enumerate(answers))) if answer is not None}
    tallies = Counter(answer for answer in answers if answer is not None)
    # Sorting on (-votes, first appearance) makes the order, and so the winner, independent of hashing.
    ranked = sorted(tallies.items(), key=lambda item: (-item[1], first_seen[item[0]]))
    counts = dict(ranked)
    if not ranked:
        return Vote(answers=answers, counts={}, winner=None, agreement=0.0, kept_index=None, consistent=False)
    winner, winner_votes = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == winner_votes
    agreement = winner_votes / len(samples)
    return Vote(
        answers=answers,
        counts=counts,
        winner=winner,
        agreement=agreement,
        kept_index=first_seen[winner],
        consistent=not tied and agreement >= min_agreement,
    )
