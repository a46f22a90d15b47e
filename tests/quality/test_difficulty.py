import pytest

from synthmix.quality.difficulty import Measures, compare_difficulty, mean_interval, measure_answers


def test_agreement_is_measured_only_for_objective_instructions_with_several_samples():
    assert measure_answers(["\\boxed{3}", "\\boxed{3}", "\\boxed{4}"], objective=True).agreement == pytest.approx(2 / 3)
    assert measure_answers(["\\boxed{3}"], objective=True).agreement is None
    assert measure_answers(["\\boxed{3}", "\\boxed{4}"], objective=False).agreement is None
    assert measure_answers(["ab", "abcd"], objective=False, judged_accuracy=7).answer_chars == 3
    assert measure_answers([], objective=True) == Measures(None, None, None)


def test_lower_agreement_lower_accuracy_or_longer_answers_say_harder():
    parent = Measures(agreement=1.0, judged_accuracy=8, answer_chars=100)
    assert compare_difficulty(Measures(2 / 3, 8, 100), parent).evidence == ("agreement",)
    assert compare_difficulty(Measures(1.0, 6, 100), parent).evidence == ("judged_accuracy",)
    assert compare_difficulty(Measures(1.0, 8, 130), parent).evidence == ("answer_length",)
    assert compare_difficulty(Measures(1.0, 8, 130), parent, min_length_gain=0.5).harder is False


def test_the_same_or_easier_is_not_harder_and_nothing_in_common_is_unmeasured():
    parent = Measures(agreement=2 / 3, judged_accuracy=7, answer_chars=100)
    same = compare_difficulty(Measures(1.0, 9, 90), parent)
    assert same.harder is False and same.agreement == pytest.approx(1 / 3) and same.answer_ratio == 0.9
    assert compare_difficulty(Measures(None, None, None), parent).harder is None
    assert compare_difficulty(Measures(1.0, None, None), Measures(None, 8, None)).harder is None


def test_mean_interval_is_a_t_interval():
    interval = mean_interval([-1.0, 0.0, 1.0, 2.0])
    assert interval.estimate == 0.5
    # t(0.975, 3) = 3.182; sd = 1.291; half-width = 3.182 * 1.291 / 2 = 2.054
    assert interval.low == pytest.approx(0.5 - 2.054, abs=1e-3) and interval.high == pytest.approx(0.5 + 2.054, abs=1e-3)
    assert mean_interval([]).estimate is None and mean_interval([0.3]).low == 0.3
