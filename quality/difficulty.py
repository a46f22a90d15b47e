"""Is a "harder" rewrite harder? Its answers against its parent's, on the measures a run has.

An evolution operation that asks for a harder instruction (add constraints, deepen,
concretize, reasoning) is taken at its word by nothing else in the recipe. Here a rewrite is
set against the instruction it rewrote, both answered by the same model in the same run:

- `agreement`: the share of sampled answers that agree on the final answer (objective
  instructions, several samples; quality/voting.py) — a harder problem splits the samples;
- `judged_accuracy`: the critique's score of the kept answer (`critique_score`, the judge's
  P(yes) on [0, 1]) — a harder problem is answered worse;
- `answer_chars`: the mean length of the sampled answers — a harder request takes more to
  answer (a constraint such as a word limit can shorten it, so length alone is weak evidence).

A rewrite is harder when its agreement or judged accuracy is lower than its parent's, or its
answers are at least `min_length_gain` longer; it is not harder when every measure both have
says otherwise, and unmeasured when the two share no measure. Differences over many pairs are
summarised by their mean and a 95% t interval (`mean_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from synthmix.quality.proportions import Interval
from synthmix.quality.voting import vote_answers


@dataclass(frozen=True)
class Measures:
    """What the run measured of one instruction's answers; None where it measured nothing."""

    agreement: float | None
    judged_accuracy: float | None
    answer_chars: float | None


@dataclass(frozen=True)
class Change:
    """A rewrite's measures less its parent's (`answer_ratio`: its answer length over the parent's)."""

    agreement: float | None
    judged_accuracy: float | None
    answer_ratio: float | None
    harder: bool | None  # None: no measure in common
    evidence: tuple[str, ...]  # the measures that say harder


def measure_answers(samples: Sequence[str] | None, *, objective: bool, judged_accuracy: float | None = None) -> Measures:
    """An instruction's measures from its sampled answers (agreement only for an objective one
    with two or more samples) and the critique's accuracy score when it was judged."""
    samples = [sample for sample in samples or [] if sample is not None]
    agreement = vote_answers(samples, min_agreement=1.0).agreement if objective and len(samples) > 1 else None
    chars = sum(len(sample) for sample in samples) / len(samples) if samples else None
    return Measures(agreement=agreement, judged_accuracy=judged_accuracy, answer_chars=chars)


def compare_difficulty(child: Measures, parent: Measures, *, min_length_gain: float = 0.2) -> Change:
    """How the rewrite's measures differ from its parent's, and whether they show it harder."""
    agreement = _less(child.agreement, parent.agreement)
    accuracy = _less(child.judged_accuracy, parent.judged_accuracy)
    ratio = child.answer_chars / parent.answer_chars if child.answer_chars is not None and parent.answer_chars else None
    evidence = tuple(
        name
        for name, says in (
            ("agreement", agreement is not None and agreement < 0),
            ("judged_accuracy", accuracy is not None and accuracy < 0),
            ("answer_length", ratio is not None and ratio >= 1 + min_length_gain),
        )
        if says
    )
    measured = any(value is not None for value in (agreement, accuracy, ratio))
    return Change(agreement=agreement, judged_accuracy=accuracy, answer_ratio=ratio, harder=bool(evidence) if measured else None, evidence=evidence)


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of `values` with a two-sided 95% Student t interval; all None for no values, and
    the mean alone as both bounds for one value."""
    n = len(values)
    if not n:
        return Interval(None, None, None)
    mean = sum(values) / n
    if n == 1:
        return Interval(mean, mean, mean)
    from scipy.stats import t

    spread = math.sqrt(sum((value - mean) ** 2 for value in values) / (n - 1)) / math.sqrt(n)
    half = float(t.ppf(0.975, n - 1)) * spread
    return Interval(mean, mean - half, mean + half)


def _less(child: float | None, parent: float | None) -> float | None:
    return child - parent if child is not None and parent is not None else None
