"""Almost Stochastic Order (Dror, Shlomov and Reichart, 2019; del Barrio et al., 2018), as deep-significance has it.

Two algorithms rarely give one score each: they give distributions over seeds. A is *stochastically
larger* than B when every quantile of A is at least B's. Almost stochastic order measures how far that
fails: the violation ratio is the part of the squared Wasserstein-2 distance between the two quantile
functions where A's quantile lies below B's,

    e_W2(A, B) = int_{F^-1(t) < G^-1(t)} (F^-1(t) - G^-1(t))^2 dt / int_0^1 (F^-1(t) - G^-1(t))^2 dt,

0 when A dominates B everywhere, 1 when B dominates A. ASO bootstraps its sampling spread and reports
`epsilon_min`, an upper confidence bound of e_W2 at the chosen confidence: epsilon_min < tau (0.5, or the
stricter 0.2 that Ulmer et al., 2022, recommend) rejects "A is not better than B". It makes no normality
assumption, which is why it is recommended for a handful of seeds.

The computation follows `deepsig.aso` (Ulmer et al., 2022) step for step, bootstrap draws included (only the
correction for several comparisons is Bonferroni's 1 - alpha / m, see `aso`), so
the same seed gives the same epsilon_min (the template's tests check this against deepsig itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

DT = 0.005  # the integration step over t in (0, 1): deepsig's default
TAU = 0.5  # epsilon_min below this rejects "A is not stochastically larger than B"


@dataclass(frozen=True)
class ASOResult:
    epsilon_min: float
    violation_ratio: float  # the point estimate, before the bootstrap's upper bound
    confidence: float  # per comparison, after the correction for several comparisons
    tau: float

    @property
    def a_better(self) -> bool:
        return self.epsilon_min < self.tau


def quantiles(scores: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The empirical quantile function of `scores` at probabilities `p`: the ceil(n p)-th smallest score."""
    ordered = np.sort(scores)
    index = np.ceil(len(ordered) * p).astype(int)
    return ordered[np.clip(index - 1, 0, len(ordered) - 1)]


def violation_ratio(a: np.ndarray, b: np.ndarray, dt: float = DT) -> float:
    """e_W2(A, B): the share of the squared W2 distance where A's quantile is below B's (0.5 if they are equal)."""
    t = np.arange(dt, 1, dt)
    f, g = quantiles(a, t), quantiles(b, t)
    diff = g - f
    distance = np.sum(diff**2 * dt)
    if distance == 0:
        return 0.5
    diff[f >= g] = 0
    return float(np.sum(diff[1:] ** 2 * dt) / distance)


def aso(
    scores_a: Sequence[float],
    scores_b: Sequence[float],
    confidence: float = 0.95,
    comparisons: int = 1,
    bootstrap: int = 1000,
    seed: int = 0,
    tau: float = TAU,
) -> ASOResult:
    """epsilon_min of "A is stochastically larger than B" (larger scores are better; swap A and B for a loss).

    Args:
        confidence: of the upper bound, e.g. 0.95 for a test at alpha 0.05.
        comparisons: the number of comparisons made together; the confidence becomes
            1 - (1 - confidence) / comparisons (Bonferroni). deepsig's `num_comparisons` adds
            (1 - confidence) / comparisons instead, the same for 2 comparisons and less strict for more.
        bootstrap: resamples of each score set (from its own quantile function) for the spread.
        seed: bootstrap iteration i draws from NumPy's RandomState(seed + i), the numbers deepsig draws.
    """
    a, b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    if comparisons > 1:
        confidence = 1 - (1 - confidence) / comparisons
    ratio = violation_ratio(a, b)
    samples = []
    for i in range(1, bootstrap + 1):
        # deepsig seeds NumPy's global generator with seed + i; a RandomState so seeded draws the same numbers
        # and leaves the caller's global generator alone
        draw = np.random.RandomState(seed + i).uniform
        uniforms = draw(0, 1, len(a) + len(b))
        samples.append(violation_ratio(quantiles(a, uniforms[: len(a)]), quantiles(b, uniforms[len(a) :])))
    const = np.sqrt(len(a) * len(b) / (len(a) + len(b)))
    sigma = np.std(const * (np.array(samples) - ratio))
    epsilon = float(np.clip(ratio - sigma / const * norm.ppf(1 - confidence), 0, 1))
    return ASOResult(epsilon, ratio, confidence, tau)
