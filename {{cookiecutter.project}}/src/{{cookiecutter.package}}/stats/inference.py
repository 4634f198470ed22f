"""The statistics of a seed-paired ablation: summaries, paired tests, corrections, effect size, power.

Every number comes from `scipy.stats`; this module only decides what to call and when a test is
undefined. An undefined test gives `p = None` with the reason, never NaN.

- Paired t-test (Student, 1908) on the per-seed differences: the same seed fixes the initialisation
  and data order of both variants, so pairing removes that shared noise (`scipy.stats.ttest_rel`).
- Wilcoxon signed-rank test (Wilcoxon, 1945) as the distribution-free check (`scipy.stats.wilcoxon`).
- Holm's step-down correction (Holm, 1979) of the family of t-test p-values, or Benjamini-Hochberg
  (1995) false-discovery-rate control (`scipy.stats.false_discovery_control`).
- Cohen's d_z (Cohen, 1988; Lakens, 2013): mean difference / standard deviation of the differences.
- Percentile bootstrap CI of the mean difference (Efron & Tibshirani, 1993) with a fixed generator.
- Friedman test (Friedman, 1937) across all variants, seeds as blocks.
- Exact power of the paired t-test from the noncentral t distribution, iterated to a seed count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # every interval in the report is a 95 % interval
BOOTSTRAP_RESAMPLES = 9999  # scipy's default; the percentile CI is stable to ~3 digits at this size


@dataclass(frozen=True)
class HypothesisTest:
    """A test's outcome; `p` is None exactly when the test is undefined."""

    statistic: float | None
    p: float | None
    note: str | None = None  # why p is None, or a caveat about a defined p


@dataclass(frozen=True)
class Summary:
    """One variant's metric over seeds."""

    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1)
    ci95: tuple[float, float]  # t-interval of the mean
    median: float
    values: dict[int, float]  # seed -> value


@dataclass(frozen=True)
class PairedComparison:
    """Variant `a` against variant `b` on the seeds they share; differences are `a - b`."""

    a: str
    b: str
    n: int
    mean_diff: float
    sd_diff: float
    ci95_diff: tuple[float, float]  # t-interval of the mean difference
    bootstrap_ci95_diff: tuple[float, float]  # percentile bootstrap over the differences
    t_test: HypothesisTest
    wilcoxon: HypothesisTest
    cohen_dz: float | None  # None when the differences have no spread


def _is_constant(x: np.ndarray) -> bool:
    """True when all entries are equal up to rounding (0.91 - 0.90 and 0.81 - 0.80 differ in the 17th digit)."""
    return bool(np.ptp(x) <= 1e-12 * max(np.abs(x).max(), 1e-300))


def describe(values: Mapping[int, float]) -> Summary:
    """n, mean, std, 95 % t-interval and median of one variant's per-seed values (n >= 2)."""
    if len(values) < 2:
        raise ValueError(f"describe needs at least 2 values for a spread, got {len(values)}")
    x = np.array([values[seed] for seed in sorted(values)], dtype=float)
    mean = float(np.mean(x))
    if _is_constant(x):
        ci = (mean, mean)  # no spread: scipy's interval would be 0 * t, plus a precision-loss warning
    else:
        interval = stats.ttest_1samp(x, popmean=0.0).confidence_interval(confidence_level=CONFIDENCE)
        ci = (float(interval.low), float(interval.high))
    return Summary(
        n=len(x),
        mean=mean,
        std=float(np.std(x, ddof=1)),
        ci95=ci,
        median=float(np.median(x)),
        values={seed: values[seed] for seed in sorted(values)},
    )


def wilcoxon_min_p(n: int) -> float:
    """The smallest two-sided p the exact signed-rank test can reach with `n` nonzero differences."""
    return float(stats.wilcoxon(np.arange(1.0, n + 1)).pvalue)  # every difference on the same side


def _snap(x: np.ndarray) -> np.ndarray:
    """`x` rounded to 12 digits of its largest entry: differences that are equal in the data (one test
    image, 0.01 accuracy) are equal floats again, so rank tests see the ties that are really there.
    0.82 - 0.81 = 0.009999999999999898 but 0.77 - 0.78 = -0.010000000000000009."""
    scale = float(np.abs(x).max()) if x.size else 0.0
    return x if scale == 0.0 else np.round(x / scale, 12) * scale


def _wilcoxon(diff: np.ndarray, alpha: float) -> HypothesisTest:
    diff = _snap(diff)  # ranks of float noise would decide W and p otherwise
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        return HypothesisTest(None, None, "all differences are zero")
    result = stats.wilcoxon(diff)  # zero_method="wilcox": zero differences carry no sign and are dropped
    if not math.isfinite(result.pvalue):
        return HypothesisTest(None, None, f"undefined for these {nonzero} nonzero differences")
    floor, note = wilcoxon_min_p(nonzero), None
    if floor > alpha:  # a reader should know the test could not have rejected, whatever the data
        note = f"with {nonzero} nonzero differences p cannot go below {floor:.3g}"
    return HypothesisTest(float(result.statistic), float(result.pvalue), note)


def compare_pair(
    a: str, a_values: Mapping[int, float], b: str, b_values: Mapping[int, float], *, alpha: float = 0.05, seed: int = 0
) -> PairedComparison:
    """Paired comparison of two variants on their common seeds.

    Args:
        a, b: variant names; every difference is `a - b`.
        a_values, b_values: seed -> metric value; both must hold the same >= 2 seeds.
        alpha: the level the report uses; only decides whether the Wilcoxon note is attached.
        seed: seeds the bootstrap generator, so the report is identical on every rerun.
    """
    if set(a_values) != set(b_values) or len(a_values) < 2:
        raise ValueError(
            f"{a!r} and {b!r} must share the same >= 2 seeds, got {sorted(a_values)} and {sorted(b_values)}"
        )
    seeds = sorted(a_values)
    x = np.array([a_values[s] for s in seeds], dtype=float)
    y = np.array([b_values[s] for s in seeds], dtype=float)
    diff = x - y  # (n,)
    mean_diff = float(np.mean(diff))
    sd_diff = float(np.std(diff, ddof=1))
    if _is_constant(diff):
        # Identical differences: the intervals collapse to a point and t = d / 0 is undefined (scipy says inf).
        why = "all differences are zero" if not np.any(diff) else "every seed gives the same difference (sd 0)"
        t_test = HypothesisTest(None, None, why)
        ci = boot = (mean_diff, mean_diff)
        cohen_dz = None
    else:
        result = stats.ttest_rel(x, y)
        t_test = HypothesisTest(float(result.statistic), float(result.pvalue))
        interval = result.confidence_interval(confidence_level=CONFIDENCE)
        ci = (float(interval.low), float(interval.high))
        # Paired design: resample whole seeds, i.e. their differences, never the two arms independently.
        boot_result = stats.bootstrap(
            (diff,),
            np.mean,
            n_resamples=BOOTSTRAP_RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",  # BCa's jackknife acceleration is unstable with a handful of seeds
            rng=np.random.default_rng(seed),
        )
        boot = (float(boot_result.confidence_interval.low), float(boot_result.confidence_interval.high))
        cohen_dz = mean_diff / sd_diff
    return PairedComparison(
        a=a,
        b=b,
        n=len(seeds),
        mean_diff=mean_diff,
        sd_diff=sd_diff,
        ci95_diff=ci,
        bootstrap_ci95_diff=boot,
        t_test=t_test,
        wilcoxon=_wilcoxon(diff, alpha),
        cohen_dz=cohen_dz,
    )


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: the k-th smallest is scaled by (m - k + 1), kept monotone."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p)
    scaled = (m - np.arange(m)) * p[order]  # (m,) k-th smallest times (m - k + 1), k from 1
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def adjust(p_values: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """Correct a family of p-values for multiple comparisons; undefined (None) tests are not in the family.

    Args:
        p_values: one p per test, None where the test was undefined.
        method: "holm" (family-wise error rate) or "bh" (Benjamini-Hochberg false discovery rate).
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"correction must be 'holm' or 'bh', got {method!r}")
    defined = [i for i, p in enumerate(p_values) if p is not None]
    adjusted: list[float | None] = [None] * len(p_values)
    if defined:
        family = [p_values[i] for i in defined]
        values = holm(family) if method == "holm" else stats.false_discovery_control(family, method="bh")
        for i, value in zip(defined, values, strict=True):
            adjusted[i] = float(value)
    return adjusted


def friedman(values: Mapping[str, Mapping[int, float]]) -> HypothesisTest | None:
    """Friedman's rank test that all variants are alike, seeds as blocks; None for fewer than 3 variants."""
    if len(values) < 3:
        return None
    seeds = sorted(next(iter(values.values())))
    samples = [[per_seed[s] for s in seeds] for per_seed in values.values()]  # (k variants, n seeds)
    if np.all(np.ptp(np.asarray(samples), axis=0) == 0):
        return HypothesisTest(None, None, "the variants tie within every seed")
    result = stats.friedmanchisquare(*samples)
    if not math.isfinite(result.pvalue):
        return HypothesisTest(None, None, "undefined for these ranks")
    return HypothesisTest(float(result.statistic), float(result.pvalue))


def paired_t_power(effect_size: float, n: int, alpha: float = 0.05) -> float:
    """Exact power of the two-sided paired t-test with `n` pairs at standardised effect d_z = `effect_size`.

    Under the alternative, t follows a noncentral t with n - 1 degrees of freedom and noncentrality
    d_z * sqrt(n); the power is the mass it puts beyond either critical value.
    """
    if n < 2:
        raise ValueError(f"a paired t-test needs n >= 2 pairs, got {n}")
    df = n - 1
    critical = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = abs(effect_size) * math.sqrt(n)
    # P(T < -c) is written as the upper tail of nct(-delta) (T(-delta) = -T(delta)): scipy's nct.cdf turns
    # NaN far in the lower tail (e.g. df 3, delta 40), while both upper tails stay finite.
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.sf(critical, df, -noncentrality))


def seeds_needed(
    difference: float, sd_diff: float, *, alpha: float = 0.05, power: float = 0.8, max_seeds: int = 10_000
) -> int | None:
    """Smallest number of seeds whose paired t-test detects `difference` with the given power.

    Args:
        difference: the smallest difference worth detecting, in the metric's units.
        sd_diff: standard deviation of the per-seed differences (observed, or assumed).
        alpha, power: two-sided level and target power.
        max_seeds: give up above this many seeds (returns None).

    Returns:
        The seed count, or None when more than `max_seeds` would be needed.
    """
    if sd_diff <= 0 or difference == 0:
        raise ValueError(f"need sd_diff > 0 and difference != 0, got sd_diff={sd_diff}, difference={difference}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got alpha={alpha}, power={power}")
    effect = abs(difference) / sd_diff
    # The normal approximation never overshoots the t-test's answer much, so start there and walk.
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    n = max(2, math.floor((z / effect) ** 2))
    if n > max_seeds:
        return None
    while n > 2 and paired_t_power(effect, n - 1, alpha) >= power:
        n -= 1
    while paired_t_power(effect, n, alpha) < power:
        n += 1
        if n > max_seeds:
            return None
    return n
