"""Tests for rankexp.eval.significance against hand-computed values and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from rankexp.eval import significance as sig

# A 5-query paired sample, in integer units so every difference is exact.
#   a = [55, 60, 52, 70, 65], b = [50, 50, 53, 60, 54]
#   d = a - b = [5, 10, -1, 10, 11]; sum 35, mean 7
#   deviations -2, 3, -8, 3, 4; squares 4 + 9 + 64 + 9 + 16 = 102
#   sd = sqrt(102 / 4) = sqrt(25.5) = 5.049752; se = sd / sqrt(5) = 2.258318
#   t = 7 / 2.258318 = 3.099652 with 4 df
#   For 4 df the t CDF has a closed form:
#     F(t) = 1/2 + 3/8 · u · (1 - t²/(12(1 + t²/4))),  u = t / sqrt(1 + t²/4)
#     t² = 9.607843, 1 + t²/4 = 3.401961, u = 1.680536, bracket = 0.764650
#     F(t) - 1/2 = 0.375 · 1.680536 · 0.764650 = 0.481883
#   two-sided p = 2 (1 - F(t)) = 0.036233
A5 = [55, 60, 52, 70, 65]
B5 = [50, 50, 53, 60, 54]


def test_paired_ttest_matches_hand_computation():
    res = sig.paired_ttest(A5, B5)
    assert res.test == "ttest"
    assert res.n == 5
    assert res.mean_diff == pytest.approx(7.0)
    assert res.statistic == pytest.approx(3.099652, abs=1e-6)
    assert res.p_value == pytest.approx(0.036233, abs=1e-6)


def test_paired_ttest_closed_form_df4():
    t = 7 / (math.sqrt(25.5) / math.sqrt(5))
    u = t / math.sqrt(1 + t * t / 4)
    cdf = 0.5 + 3 / 8 * u * (1 - t * t / (12 * (1 + t * t / 4)))
    assert sig.paired_ttest(A5, B5).p_value == pytest.approx(2 * (1 - cdf), rel=1e-9)


def test_paired_ttest_matches_scipy_and_sign():
    rng = np.random.default_rng(3)
    a = rng.normal(0.5, 0.1, 30)
    b = a - rng.normal(0.02, 0.05, 30)
    ref = stats.ttest_rel(a, b)
    res = sig.paired_ttest(a, b)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    flipped = sig.paired_ttest(b, a)
    assert flipped.statistic == pytest.approx(-res.statistic)
    assert flipped.p_value == pytest.approx(res.p_value)
    assert flipped.mean_diff == pytest.approx(-res.mean_diff)


def test_paired_ttest_degenerate_differences():
    same = sig.paired_ttest([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert (same.statistic, same.p_value, same.mean_diff) == (0.0, 1.0, 0.0)
    shifted = sig.paired_ttest([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])
    assert shifted.statistic == math.inf and shifted.p_value == 0.0


def test_wilcoxon_exact_hand_computation():
    # d = [5, 10, -1, 9, 11]: |d| ranks 5→2, 10→4, 1→1, 9→3, 11→5; W+ = 14, W- = 1.
    # Exact null: the 2^5 = 32 sign patterns are equally likely; subsets of {1..5} with rank sum
    # <= 1 are {} and {1}: 2 of 32, so two-sided p = 2 · 2/32 = 0.125. Statistic = min(W+, W-) = 1.
    res = sig.wilcoxon([55, 60, 52, 69, 65], [50, 50, 53, 60, 54])
    assert res.test == "wilcoxon"
    assert res.statistic == pytest.approx(1.0)
    assert res.p_value == pytest.approx(0.125)
    assert res.mean_diff == pytest.approx(34 / 5)


def test_wilcoxon_matches_scipy_with_zeros_and_ties():
    # 16 pairs (two zero differences, several tied |d|), integer units so ties are exact.
    a = [30, 50, 40, 90, 20, 60, 70, 10, 55, 35, 45, 80, 65, 15, 25, 75]
    b = [25, 50, 30, 70, 30, 60, 50, 5, 45, 40, 30, 60, 55, 20, 10, 60]
    ref = stats.wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    res = sig.wilcoxon(a, b)
    assert res.n == 16
    assert res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    # Dropping the zeros by hand (zero_method="wilcox") gives the same test on 14 pairs.
    kept = [(x, y) for x, y in zip(a, b) if x != y]
    dropped = stats.wilcoxon([x for x, _ in kept], [y for _, y in kept])
    assert res.p_value == pytest.approx(dropped.pvalue)


def test_wilcoxon_all_zero_differences_gives_p_one():
    res = sig.wilcoxon([0.1, 0.2, 0.3], [0.1, 0.2, 0.3])
    assert res.p_value == 1.0
    assert res.mean_diff == 0.0


def test_randomization_exact_enumeration_small_sample():
    # d = [5, 10, -1, 9, 11], |sum| = 34. Of the 32 sign flips only +-(5+10-1+9+11) = +-34 and
    # +-(5+10+1+9+11) = +-36 reach |sum| >= 34: exact permutation p = 4/32 = 0.125. A Monte
    # Carlo estimate with 20000 samples has sd sqrt(.125·.875/20000) = 0.0023.
    res = sig.randomization_test([55, 60, 52, 69, 65], [50, 50, 53, 60, 54], n_samples=20000, seed=7)
    assert res.test == "randomization"
    assert res.statistic == pytest.approx(6.8)
    assert res.mean_diff == pytest.approx(6.8)
    assert res.p_value == pytest.approx(0.125, abs=0.01)


def test_randomization_is_reproducible_for_a_seed():
    rng = np.random.default_rng(11)
    a = rng.normal(0.4, 0.2, 50)
    b = a - rng.normal(0.03, 0.15, 50)
    first = sig.randomization_test(a, b, n_samples=5000, seed=123)
    again = sig.randomization_test(a, b, n_samples=5000, seed=123)
    other = sig.randomization_test(a, b, n_samples=5000, seed=124)
    assert first == again
    assert other.p_value != first.p_value
    # p is (count + 1) / (n_samples + 1), so a multiple of 1/5001.
    count = first.p_value * 5001 - 1
    assert count == pytest.approx(round(count), abs=1e-6)


def test_randomization_close_to_ttest_on_large_sample():
    rng = np.random.default_rng(2024)
    a = rng.normal(0.45, 0.2, 400)
    b = a - rng.normal(0.015, 0.15, 400)
    t_p = sig.paired_ttest(a, b).p_value
    r_p = sig.randomization_test(a, b, n_samples=10000, seed=0).p_value
    assert 0.01 < t_p < 0.5  # a moderate p, where the comparison is informative
    assert r_p == pytest.approx(t_p, abs=0.02)


def test_randomization_no_difference_gives_p_one():
    res = sig.randomization_test([0.1, 0.2, 0.3], [0.1, 0.2, 0.3], n_samples=100)
    assert res.p_value == 1.0


def test_randomization_strong_effect_reaches_minimum_p():
    a = np.linspace(0.5, 0.9, 40)
    res = sig.randomization_test(a, a - 0.1, n_samples=999, seed=1)
    assert res.p_value == pytest.approx(1 / 1000)


@pytest.mark.parametrize("test", sorted(sig.TESTS))
def test_input_validation(test):
    fn = sig.TESTS[test]
    with pytest.raises(ValueError, match="equal length"):
        fn([0.1, 0.2, 0.3], [0.1, 0.2])
    with pytest.raises(ValueError, match="at least 2"):
        fn([0.1], [0.2])
    with pytest.raises(ValueError, match="finite"):
        fn([0.1, float("nan")], [0.2, 0.3])


def test_tests_registry():
    assert sig.TESTS == {
        "ttest": sig.paired_ttest,
        "wilcoxon": sig.wilcoxon,
        "randomization": sig.randomization_test,
    }


def test_summarize_hand_computation():
    # [0.2, 0.4, 0.6]: mean 0.4, sd = sqrt((0.04 + 0 + 0.04) / 2) = 0.2.
    # t_{0.975, 2}: for 2 df F(t) = 1/2 + t / (2 sqrt(2 + t²)); F = 0.975 gives
    # t / sqrt(2 + t²) = 0.95, t² = 1.805 / 0.0975 = 18.512821, t = 4.302653.
    # half-width = 4.302653 · 0.2 / sqrt(3) = 0.496828.
    s = sig.summarize([0.2, 0.4, 0.6])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.4)
    assert s["std"] == pytest.approx(0.2)
    half = math.sqrt(1.805 / 0.0975) * 0.2 / math.sqrt(3)
    assert half == pytest.approx(0.496828, abs=1e-6)
    assert s["ci95_low"] == pytest.approx(0.4 - half)
    assert s["ci95_high"] == pytest.approx(0.4 + half)


def test_summarize_single_value_and_empty():
    assert sig.summarize([0.7]) == {"n": 1, "mean": 0.7, "std": 0.0, "ci95_low": 0.7, "ci95_high": 0.7}
    with pytest.raises(ValueError):
        sig.summarize([])


def test_holm_hand_computation():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted: 0.005, 0.01, 0.03, 0.04
    # times (m - j + 1) = 4, 3, 2, 1: 0.020, 0.030, 0.060, 0.040
    # running max (step-down monotonicity): 0.020, 0.030, 0.060, 0.060
    # back in input order: [0.03, 0.06, 0.06, 0.02]
    assert sig.correct([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_is_default():
    # [0.6, 0.9, 0.02]: sorted 0.02·3 = 0.06, 0.6·2 = 1.2 → 1, 0.9·1 = 0.9 → max 1.
    assert sig.correct([0.6, 0.9, 0.02]) == pytest.approx([1.0, 1.0, 0.06])


def test_bonferroni_hand_computation():
    assert sig.correct([0.01, 0.04, 0.03, 0.3], "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 1.0])


def test_bh_hand_computation():
    # p = [0.01, 0.04, 0.03, 0.005], m = 4. Sorted 0.005, 0.01, 0.03, 0.04 at ranks 1..4
    # m/j · p: 0.020, 0.020, 0.040, 0.040; running min from the top rank down: unchanged.
    # input order: [0.02, 0.04, 0.04, 0.02]
    assert sig.correct([0.01, 0.04, 0.03, 0.005], "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])


def test_bh_step_up_monotonicity():
    # p = [0.01, 0.02, 0.025, 0.5]: m/j · p = 0.04, 0.04, 0.0333.., 0.5
    # running min from the largest rank: 0.5, 0.0333.., then min(0.04, 0.0333..) twice.
    assert sig.correct([0.01, 0.02, 0.025, 0.5], "bh") == pytest.approx([1 / 30, 1 / 30, 1 / 30, 0.5])


def test_bh_matches_scipy_false_discovery_control():
    p = np.random.default_rng(5).uniform(0, 0.2, 12)
    assert sig.correct(p.tolist(), "bh") == pytest.approx(stats.false_discovery_control(p, method="bh").tolist())


def test_correct_none_empty_and_errors():
    assert sig.correct([0.2, 0.01], "none") == [0.2, 0.01]
    assert sig.correct([], "holm") == []
    with pytest.raises(ValueError, match="holm, bonferroni, bh, none"):
        sig.correct([0.1], "hochberg")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        sig.correct([1.5], "holm")


def test_result_is_frozen():
    res = sig.paired_ttest(A5, B5)
    with pytest.raises(AttributeError):
        res.p_value = 0.5  # type: ignore[misc]
