"""Proportions from small counts, with 95% intervals that stay honest at a few dozen rows.

- `wilson_interval`: the Wilson score interval of k successes in n (never outside [0, 1], and
  not degenerate at k = 0 or k = n, unlike the normal approximation).
- `newcombe_difference`: the interval of p1 - p2 for two independent proportions, from their
  Wilson intervals (Newcombe 1998, method 10).
- `rank_auc`: the area under the ROC curve of a score for positives against negatives, i.e. the
  share of (positive, negative) pairs the score orders right (ties count half), with a
  score-type interval from the Hanley-McNeil (1982) variance: the AUCs whose own variance puts
  the estimate within z standard errors, both group sizes set to their mean (Newcombe 2006).
  The Wald form (estimate +- z SE) collapses to a point at 0 or 1, which a probe set of five
  right answers and one wrong one reaches easily.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Proportion:
    """k of n, its estimate and interval; with n = 0 the estimate and bounds are None."""

    k: int
    n: int
    p: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Interval:
    estimate: float | None
    low: float | None
    high: float | None


def wilson_interval(k: int, n: int, *, z: float = Z_95) -> Proportion:
    """k successes of n trials with the Wilson score interval."""
    if not 0 <= k <= n:
        raise ValueError(f"k={k} successes of n={n} trials: k must lie in 0..n")
    if n == 0:
        return Proportion(k, n, None, None, None)
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Proportion(k, n, p, max(0.0, centre - half), min(1.0, centre + half))


def newcombe_difference(first: Proportion, second: Proportion) -> Interval:
    """first.p - second.p with Newcombe's hybrid score interval; all None when either is empty."""
    if first.n == 0 or second.n == 0:
        return Interval(None, None, None)
    difference = first.p - second.p
    below = math.sqrt((first.p - first.low) ** 2 + (second.high - second.p) ** 2)
    above = math.sqrt((first.high - first.p) ** 2 + (second.p - second.low) ** 2)
    return Interval(difference, difference - below, difference + above)


def rank_auc(positive: np.ndarray, negative: np.ndarray, *, z: float = Z_95) -> Interval:
    """P(score of a positive > score of a negative) + half the ties, with its score-type interval;
    all None when either side is empty."""
    positive, negative = np.asarray(positive, dtype=float), np.asarray(negative, dtype=float)
    n1, n0 = len(positive), len(negative)
    if n1 == 0 or n0 == 0:
        return Interval(None, None, None)
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    auc = float((greater + 0.5 * ties) / (n1 * n0))
    mean_size = (n1 + n0) / 2

    def outside(theta: float) -> bool:
        """Whether `auc` lies more than z standard errors from an AUC of `theta`."""
        variance = theta * (1 - theta) / (n1 * n0) * (1 + (mean_size - 1) * ((1 - theta) / (2 - theta) + theta / (1 + theta)))
        return (auc - theta) ** 2 > z * z * variance

    return Interval(auc, _boundary(outside, 0.0, auc), _boundary(outside, 1.0, auc))


def _boundary(outside: Callable[[float], bool], far: float, near: float) -> float:
    """Between `far` (outside the interval, or the end of [0, 1]) and `near` (inside), the edge."""
    if not outside(far):
        return far
    for _ in range(60):
        middle = (far + near) / 2
        far, near = (middle, near) if outside(middle) else (far, middle)
    return near
