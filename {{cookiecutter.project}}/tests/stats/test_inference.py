"""The statistics against published worked examples, closed forms and naive reference implementations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from {{ cookiecutter.package }}.stats.inference import (
    adjust,
    compare_pair,
    describe,
    friedman,
    holm,
    paired_t_power,
    seeds_needed,
    wilcoxon_min_p,
)

# Student's sleep data (Cushny & Peebles, 1905): extra hours of sleep of 10 patients under two drugs.
# R: t.test(extra ~ group, data = sleep, paired = TRUE) gives t = -4.0621, df = 9, p-value = 0.002833,
# 95 percent confidence interval -2.4598858 -0.7001142, mean difference -1.58.
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def as_seeds(values: list[float]) -> dict[int, float]:
    return dict(enumerate(values))


def test_paired_t_test_reproduces_students_sleep_data():
    pair = compare_pair("drug1", as_seeds(SLEEP_1), "drug2", as_seeds(SLEEP_2))
    assert pair.n == 10
    assert pair.mean_diff == pytest.approx(-1.58)
    assert pair.t_test.statistic == pytest.approx(-4.0621, abs=1e-4)
    assert pair.t_test.p == pytest.approx(0.002833, abs=1e-6)
    assert pair.ci95_diff == pytest.approx((-2.4598858, -0.7001142), abs=1e-6)
    # d_z = mean / sd of the differences; sd = 1.229995 for this data, and d_z = t / sqrt(n) exactly.
    assert pair.cohen_dz == pytest.approx(-1.58 / 1.229995, abs=1e-5)
    assert pair.cohen_dz == pytest.approx(pair.t_test.statistic / math.sqrt(10))


def test_describe_matches_the_closed_form_t_interval():
    values = [0.912, 0.905, 0.921, 0.899, 0.915]
    summary = describe(as_seeds(values))
    mean, sd, n = np.mean(values), np.std(values, ddof=1), len(values)
    half_width = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    assert (summary.n, summary.mean, summary.std, summary.median) == (n, pytest.approx(mean), pytest.approx(sd), 0.912)
    assert summary.ci95 == pytest.approx((mean - half_width, mean + half_width))
    assert summary.values == as_seeds(values)


def test_describe_of_identical_values_has_a_point_interval_and_refuses_one_value():
    summary = describe({0: 7.0, 1: 7.0, 2: 7.0})
    assert (summary.std, summary.ci95) == (0.0, (7.0, 7.0))
    with pytest.raises(ValueError, match="at least 2"):
        describe({0: 1.0})


def naive_signed_rank_p(diff: list[float]) -> float:
    """Exact two-sided signed-rank p by enumerating all 2^n sign patterns (no ties, no zeros)."""
    ranks = stats.rankdata(np.abs(diff))
    w_plus = ranks[np.asarray(diff) > 0].sum()
    observed = min(w_plus, ranks.sum() - w_plus)
    null = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s) for signs in itertools.product([0, 1], repeat=len(diff))
    ]
    return min(1.0, 2 * np.mean(np.asarray(null) <= observed))


def test_wilcoxon_matches_an_enumerated_null_distribution():
    diff = [1.1, -0.4, 2.3, 0.7, 1.9, 3.2, -0.25, 0.5]  # distinct magnitudes: the exact test applies
    pair = compare_pair("a", as_seeds(diff), "b", as_seeds([0.0] * len(diff)))
    w_minus = 1 + 2  # ranks of |-0.25| and |-0.4|
    assert pair.wilcoxon.statistic == w_minus
    assert pair.wilcoxon.p == pytest.approx(naive_signed_rank_p(diff))
    assert pair.wilcoxon.note is None


def test_wilcoxon_sees_the_ties_the_data_has_not_float_noise():
    """Accuracies on 100 test images: differences of whole images, as floats that differ in the 17th digit.

    0.82 - 0.81 and 0.77 - 0.78 are 1 image apart each way; unsnapped, their ranks (and W and p) would
    depend on which accuracies the seeds happened to reach.
    """
    images = [1, -1, 1, -1, 2, -2, 3, 4, 5, 6]  # the true differences, in images
    expected = stats.wilcoxon(np.array(images, dtype=float))  # W = 10.5 with tied ranks averaged
    for base in ([82, 77, 64, 55, 71, 90, 33, 48, 59, 66], [41, 65, 12, 93, 27, 38, 70, 81, 19, 54]):
        a = {seed: (b + d) / 100 for seed, (b, d) in enumerate(zip(base, images, strict=True))}
        b = {seed: value / 100 for seed, value in enumerate(base)}
        pair = compare_pair("a", a, "b", b)
        assert pair.wilcoxon.statistic == pytest.approx(expected.statistic)
        assert pair.wilcoxon.p == pytest.approx(expected.pvalue)


def test_wilcoxon_floor_is_two_over_two_to_the_n_and_is_reported():
    assert [wilcoxon_min_p(n) for n in (3, 5, 6)] == pytest.approx([2 / 8, 2 / 32, 2 / 64])
    pair = compare_pair("a", {0: 1.0, 1: 2.5, 2: 3.0}, "b", {0: 0.0, 1: 0.0, 2: 0.0})
    assert pair.wilcoxon.p == pytest.approx(0.25)
    assert "cannot go below 0.25" in pair.wilcoxon.note


def test_all_zero_differences_give_no_p_value_and_say_why():
    same = {0: 0.9, 1: 0.8, 2: 0.85}
    pair = compare_pair("a", same, "b", same)
    assert pair.t_test.p is None and pair.wilcoxon.p is None and pair.cohen_dz is None
    assert pair.t_test.note == pair.wilcoxon.note == "all differences are zero"
    assert pair.ci95_diff == pair.bootstrap_ci95_diff == (0.0, 0.0)


def test_constant_differences_leave_t_undefined_despite_rounding():
    # 0.91 - 0.90 and 0.81 - 0.80 differ in the last bits; scipy would report t = 1e15 and p = 0.
    pair = compare_pair("a", {0: 0.91, 1: 0.81, 2: 0.71}, "b", {0: 0.90, 1: 0.80, 2: 0.70})
    assert pair.t_test.p is None and "same difference" in pair.t_test.note
    assert pair.cohen_dz is None
    assert pair.mean_diff == pytest.approx(0.01)
    assert pair.wilcoxon.p == pytest.approx(0.25)  # all three on one side: 2 / 2^3


def test_compare_pair_refuses_unpaired_seeds():
    with pytest.raises(ValueError, match="same >= 2 seeds"):
        compare_pair("a", {0: 1.0, 1: 2.0}, "b", {0: 1.0, 2: 2.0})


def test_bootstrap_interval_is_deterministic_and_contains_the_mean_difference():
    a, b = as_seeds(SLEEP_2), as_seeds(SLEEP_1)
    first, again = compare_pair("a", a, "b", b), compare_pair("a", a, "b", b)
    assert first.bootstrap_ci95_diff == again.bootstrap_ci95_diff
    low, high = first.bootstrap_ci95_diff
    assert low < first.mean_diff < high
    # A different generator moves the interval: the fixed seed, not luck, is what makes reruns agree.
    assert compare_pair("a", a, "b", b, seed=1).bootstrap_ci95_diff != first.bootstrap_ci95_diff
    # The percentile interval is that of scipy resampling the differences directly.
    diff = np.array(SLEEP_2) - np.array(SLEEP_1)
    reference = stats.bootstrap((diff,), np.mean, method="percentile", rng=np.random.default_rng(0))
    assert (low, high) == pytest.approx((reference.confidence_interval.low, reference.confidence_interval.high))


def test_holm_and_benjamini_hochberg_against_hand_computed_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06.
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p*m/rank = 0.02, 0.02, 0.04, 0.04, then running min from the largest rank down.
    assert adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_adjust_leaves_undefined_tests_out_of_the_family():
    assert adjust([0.01, None, 0.04], "holm") == [pytest.approx(0.02), None, pytest.approx(0.04)]
    assert adjust([None, None], "bh") == [None, None]
    with pytest.raises(ValueError, match="'holm' or 'bh'"):
        adjust([0.1], "bonferroni")


def test_friedman_with_perfect_agreement_has_the_closed_form_statistic():
    # Every seed ranks c < b < a, so the rank sums are n, 2n, 3n and Q = n (k - 1).
    n = 5
    values = {name: {s: base + 0.01 * s for s in range(n)} for name, base in (("a", 3.0), ("b", 2.0), ("c", 1.0))}
    result = friedman(values)
    assert result.statistic == pytest.approx(n * 2)
    assert result.p == pytest.approx(math.exp(-n))  # chi2 with 2 df: sf(q) = exp(-q / 2)


def test_friedman_needs_three_variants_and_some_difference():
    assert friedman({"a": {0: 1.0, 1: 2.0}, "b": {0: 1.5, 1: 2.5}}) is None
    tied = friedman({name: {0: 1.0, 1: 2.0} for name in "abc"})
    assert tied.p is None and "tie" in tied.note


def test_power_of_the_paired_t_test_matches_gpower_and_simulation():
    # G*Power (t tests, matched pairs, two-tailed, alpha .05): d_z = 1 needs n = 10 at power .8031.
    assert paired_t_power(1.0, 10) == pytest.approx(0.8031, abs=5e-4)
    assert seeds_needed(1.0, 1.0) == 10
    assert seeds_needed(0.5, 1.0) == 34  # G*Power: d_z = 0.5 -> n = 34
    # Monte Carlo: the fraction of simulated paired t-tests at n = 10, d_z = 1 that reject.
    diffs = np.random.default_rng(0).normal(1.0, 1.0, size=(20_000, 10))
    rejected = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue < 0.05
    assert rejected.mean() == pytest.approx(paired_t_power(1.0, 10), abs=0.01)


def test_power_stays_a_probability_for_huge_effects():
    # scipy's nct.cdf returns NaN this far in the tail; the power must not.
    for n in (2, 4, 10, 51):
        powers = [paired_t_power(effect, n) for effect in (0.0, 0.5, 2.0, 10.0, 40.0, 500.0)]
        assert powers[0] == pytest.approx(0.05)  # no effect: the test rejects at its level
        assert all(0 <= p <= 1 for p in powers) and powers == sorted(powers)


@pytest.mark.parametrize("difference, sd", [(0.3, 1.0), (1.0, 0.2), (0.01, 0.004), (2.0, 1.0)])
def test_seeds_needed_is_the_smallest_sufficient_count(difference, sd):
    n = seeds_needed(difference, sd)
    assert paired_t_power(difference / sd, n) >= 0.8
    assert n == 2 or paired_t_power(difference / sd, n - 1) < 0.8


def test_seeds_needed_gives_up_and_rejects_bad_input():
    assert seeds_needed(0.001, 1.0, max_seeds=1000) is None
    with pytest.raises(ValueError, match="sd_diff > 0"):
        seeds_needed(0.1, 0.0)
    with pytest.raises(ValueError, match="alpha and power"):
        seeds_needed(0.1, 1.0, power=1.5)
