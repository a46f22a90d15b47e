"""Reading a judge by probability: what its first reply token's distribution says.

A judge asked for a one-token reply ("Yes" or "No"; a digit; an option letter) and for the
likeliest tokens at that position (`logprobs`) gives more than its greedy word: the
probability mass on each answer. Small judges say "Yes" to almost everything, but how sure
they are still orders right answers above wrong ones far better than the word does.

Every function takes one position's candidates, {token text: log-probability} (the first entry
of the LLM layer's `llm_top_logprobs`), and returns None when none of the answers it reads is
among them: a reply that cannot be read is never a silent pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

Candidates = Mapping[str, float]

# Tokens are compared stripped and case-folded; a token counts for a word when it is a non-empty
# prefix of it ("Y", "yes", " Yes" for yes), as tokenizers cut the word differently.
YES_WORDS = ("yes", "是", "对")
NO_WORDS = ("no", "否", "不")


def _normalised(token: str) -> str:
    return token.strip().casefold()


def _mass_on(candidates: Candidates, words: Sequence[str]) -> float:
    total = 0.0
    for token, logprob in candidates.items():
        text = _normalised(token)
        if text and any(word.startswith(text) for word in words):
            total += math.exp(logprob)
    return total


def yes_probability(candidates: Candidates) -> float | None:
    """P(yes) renormalised over the yes and no tokens among the candidates; None if neither is there."""
    yes, no = _mass_on(candidates, YES_WORDS), _mass_on(candidates, NO_WORDS)
    if yes + no == 0:
        return None
    return yes / (yes + no)


def option_probabilities(candidates: Candidates, options: Sequence[str]) -> dict[str, float] | None:
    """Each option's probability (options are single tokens: "A", "B", "1", ...), renormalised
    over the options found; None if no option is among the candidates."""
    mass = {option: 0.0 for option in options}
    for token, logprob in candidates.items():
        text = _normalised(token)
        for option in options:
            if text == option.casefold():
                mass[option] += math.exp(logprob)
    total = sum(mass.values())
    if total == 0:
        return None
    return {option: value / total for option, value in mass.items()}


def expected_score(candidates: Candidates, scores: Sequence[int]) -> float | None:
    """The expected score over the score tokens (one digit each), renormalised; None if no score token is there."""
    probabilities = option_probabilities(candidates, [str(score) for score in scores])
    if probabilities is None:
        return None
    return sum(int(option) * probability for option, probability in probabilities.items())
