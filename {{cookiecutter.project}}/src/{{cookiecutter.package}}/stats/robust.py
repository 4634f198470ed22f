"""Aggregates for few runs that rliable recommends (Agarwal et al., NeurIPS 2021, "Deep RL at the Edge of the
Statistical Precipice"), with its stratified bootstrap.

Scores are arrays of shape (runs, tasks): one column per task (an experiment, a dataset), one row per seed;
a single experiment is one column.

- `iqm`: the interquartile mean, the mean of the middle 50 % of all runs (scipy's trim_mean with 25 % cut
  at each end): robust to an outlying seed like the median, less noisy than it.
- `optimality_gap`: how far the runs fall short of a target score gamma, on average (0: all reach it).
- `probability_of_improvement`: P(X > Y) + P(X = Y) / 2 for a random run of X and one of Y, from the
  Mann-Whitney U statistic, averaged over tasks: how often X beats Y, not by how much.
- `stratified_bootstrap_ci`: percentile interval of any of these, resampling runs with replacement
  within each task (each task keeps its weight), each score array independently.
- `performance_profile`: the fraction of runs scoring above each threshold tau, the whole distribution.

The numbers equal rliable's (the template's tests compare them with rliable itself); the bootstrap draws
from NumPy's Generator, so intervals agree with rliable's within their Monte-Carlo error, not to the digit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

BOOTSTRAP_REPS = 2000  # percentile intervals: the 2.5 % and 97.5 % quantiles of 2,000 resamples


def as_matrix(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """(runs,) -> (runs, 1); (runs, tasks) unchanged."""
    array = np.asarray(scores, dtype=float)
    return array[:, None] if array.ndim == 1 else array


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    return float(stats.trim_mean(as_matrix(scores), proportiontocut=0.25, axis=None))


def mean(scores: Sequence[float] | np.ndarray) -> float:
    """The mean over tasks of each task's mean score."""
    return float(np.mean(np.mean(as_matrix(scores), axis=0)))


def median(scores: Sequence[float] | np.ndarray) -> float:
    """The median over tasks of each task's mean score."""
    return float(np.median(np.mean(as_matrix(scores), axis=0)))


def optimality_gap(scores: Sequence[float] | np.ndarray, gamma: float = 1.0) -> float:
    return float(gamma - np.mean(np.minimum(as_matrix(scores), gamma)))


def probability_of_improvement(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """P(X > Y) + P(X = Y) / 2, per task from Mann-Whitney's U = #(x > y) + #(x = y) / 2, averaged over tasks."""
    x, y = as_matrix(x), as_matrix(y)
    above = x[:, None, :] > y[None, :, :]  # (runs of x, runs of y, tasks): every pair of runs, per task
    ties = x[:, None, :] == y[None, :, :]
    return float(np.mean(np.mean(above + 0.5 * ties, axis=(0, 1))))  # U / (n m) per task, then over tasks


def stratified_bootstrap_ci(
    statistic: Callable[..., float],
    *scores: Sequence[float] | np.ndarray,
    reps: int = BOOTSTRAP_REPS,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of `statistic(*scores)`: runs resampled within each task, each array on its own."""
    arrays = [as_matrix(s) for s in scores]
    rng = np.random.default_rng(seed)
    values = np.empty(reps)
    for r in range(reps):
        resampled = []
        for array in arrays:
            rows = rng.integers(0, array.shape[0], size=array.shape)  # a resample of runs for every task
            resampled.append(np.take_along_axis(array, rows, axis=0))
        values[r] = statistic(*resampled)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def performance_profile(scores: Sequence[float] | np.ndarray, taus: Sequence[float] | np.ndarray) -> np.ndarray:
    """The fraction of all runs (every task) scoring above each tau."""
    array = as_matrix(scores)
    return np.array([np.mean(array > tau) for tau in taus])
