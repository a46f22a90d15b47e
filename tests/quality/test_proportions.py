import numpy as np
import pytest

from synthmix.quality.proportions import newcombe_difference, rank_auc, wilson_interval


def test_wilson_interval_matches_the_published_values():
    interval = wilson_interval(8, 10)
    assert (interval.k, interval.n, interval.p) == (8, 10, 0.8)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.4902, 0.9433)


def test_wilson_interval_is_not_degenerate_at_none_or_all():
    none, every = wilson_interval(0, 10), wilson_interval(5, 5)
    assert none.low == 0 and round(none.high, 4) == 0.2775
    assert every.high == 1 and round(every.low, 4) == 0.5655


def test_an_empty_count_has_no_estimate_and_an_impossible_one_is_an_error():
    assert wilson_interval(0, 0).p is None and wilson_interval(0, 0).low is None
    with pytest.raises(ValueError, match="k must lie in 0..n"):
        wilson_interval(4, 3)


def test_newcombe_difference_matches_newcombes_worked_example():
    # Newcombe (1998), Statistics in Medicine 17:873, table II: 56/70 - 48/80.
    difference = newcombe_difference(wilson_interval(56, 70), wilson_interval(48, 80))
    assert round(difference.estimate, 4) == 0.2
    assert (round(difference.low, 4), round(difference.high, 4)) == (0.0524, 0.3339)


def test_newcombe_difference_of_an_empty_proportion_is_unknown():
    assert newcombe_difference(wilson_interval(3, 4), wilson_interval(0, 0)).estimate is None


def test_auc_counts_pairs_ordered_right_and_ties_as_half():
    assert rank_auc(np.array([3.0, 2.0]), np.array([1.0, 2.0])).estimate == pytest.approx(3.5 / 4)
    assert rank_auc(np.array([9.0, 8.0]), np.array([1.0, 2.0])).estimate == 1.0
    assert rank_auc(np.array([1.0, 2.0]), np.array([8.0, 9.0])).estimate == 0.0
    assert rank_auc(np.array([5.0, 5.0]), np.array([5.0])).estimate == 0.5


def test_auc_interval_holds_the_estimate_and_narrows_with_more_pairs():
    small = rank_auc(np.array([3.0, 2.0, 6.0]), np.array([1.0, 2.5, 4.0]))
    large = rank_auc(np.tile([3.0, 2.0, 6.0], 20), np.tile([1.0, 2.5, 4.0], 20))
    assert small.estimate == pytest.approx(large.estimate)
    assert small.low < small.estimate < small.high and 0 <= small.low and small.high <= 1
    assert large.high - large.low < small.high - small.low


def test_auc_without_one_side_is_unknown():
    assert rank_auc(np.array([1.0]), np.array([])).estimate is None


def test_a_perfect_auc_from_few_pairs_keeps_a_wide_interval():
    perfect = rank_auc(np.array([9.0, 9.0, 8.0, 9.0, 7.0]), np.array([3.0]))
    assert perfect.estimate == perfect.high == 1.0
    assert 0.2 < perfect.low < 0.6, "five right and one wrong answer cannot show near-perfect separation"
    many = rank_auc(np.full(50, 9.0), np.full(50, 3.0))
    assert perfect.low < many.low < 1.0
