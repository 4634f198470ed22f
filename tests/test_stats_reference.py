"""The generated project's robust statistics against the reference packages themselves: rliable (Agarwal et al.,
2021) and deepsig (Ulmer et al., 2022).

The generated project writes them out with numpy and scipy (docs/ablations.md says why); these are test
dependencies of the template only. Tolerances, stated per check:
- point estimates (IQM, mean, median, optimality gap, probability of improvement, performance profiles): 1e-9;
- ASO's epsilon_min: 1e-9 as well, since the port draws the very numbers deepsig draws for a seed;
- stratified-bootstrap intervals: both sides resample 2,000 times with different generators, so the ends of
  the 95 % intervals may differ by Monte-Carlo error: at most 0.03 on scores of spread about 0.1 (about three
  times the bootstrap standard error of a 2.5 % quantile at 2,000 resamples here).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import Baker

rliable_metrics = pytest.importorskip("rliable.metrics")
rliable_library = pytest.importorskip("rliable.library")
deepsig = pytest.importorskip("deepsig")

EXACT = 1e-9
BOOTSTRAP = 0.03


@pytest.fixture(scope="module")
def stats(bake: Baker):
    """The baked project's stats package, imported from its source tree."""
    project = bake(project_name="Stats Reference", include_simclr="no", include_vit="no", tracker="none")
    sys.path.insert(0, str(project / "src"))
    try:
        from stats_reference.stats import aso, robust

        yield robust, aso
    finally:
        sys.path.remove(str(project / "src"))


def scores(seed: int, shape: tuple[int, int], shift: float = 0.0, ties: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = rng.normal(0.7 + shift, 0.1, shape)
    return np.round(values, 1) if ties else values


CASES = [(0, (3, 1)), (1, (5, 1)), (2, (10, 4)), (3, (7, 3))]


@pytest.mark.parametrize(("seed", "shape"), CASES)
def test_point_estimates_equal_rliables(stats, seed: int, shape: tuple[int, int]) -> None:
    robust, _ = stats
    x = scores(seed, shape)
    assert robust.iqm(x) == pytest.approx(rliable_metrics.aggregate_iqm(x), abs=EXACT)
    assert robust.mean(x) == pytest.approx(rliable_metrics.aggregate_mean(x), abs=EXACT)
    assert robust.median(x) == pytest.approx(rliable_metrics.aggregate_median(x), abs=EXACT)
    assert robust.optimality_gap(x) == pytest.approx(rliable_metrics.aggregate_optimality_gap(x), abs=EXACT)
    taus = np.linspace(0.3, 1.1, 17)
    profile, _ = rliable_library.create_performance_profile({"x": x}, taus, reps=10)
    np.testing.assert_allclose(robust.performance_profile(x, taus), profile["x"], atol=EXACT)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(("seed", "shape"), CASES)
def test_probability_of_improvement_equals_rliables(stats, seed: int, shape: tuple[int, int], ties: bool) -> None:
    robust, _ = stats
    x = scores(seed, shape, ties=ties)
    y = scores(seed + 100, (shape[0] + 1, shape[1]), shift=-0.05, ties=ties)  # another number of runs
    expected = rliable_metrics.probability_of_improvement(x, y)
    assert robust.probability_of_improvement(x, y) == pytest.approx(expected, abs=EXACT)
    assert robust.probability_of_improvement(x, x) == pytest.approx(0.5, abs=EXACT)


@pytest.mark.parametrize(("seed", "shape"), CASES[1:])
def test_bootstrap_intervals_agree_within_monte_carlo_error(stats, seed: int, shape: tuple[int, int]) -> None:
    robust, _ = stats
    x, y = scores(seed, shape), scores(seed + 100, shape, shift=-0.05)
    np.random.seed(seed)  # rliable draws from NumPy's global generator
    _, ci = rliable_library.get_interval_estimates(
        {"x": x}, lambda s: np.array([rliable_metrics.aggregate_iqm(s)]), reps=2000
    )
    np.testing.assert_allclose(robust.stratified_bootstrap_ci(robust.iqm, x), ci["x"].ravel(), atol=BOOTSTRAP)
    if shape[1] == 1:
        # One task of 5 runs: P(x > y) takes few values (multiples of 1/30), and an end of the interval can sit
        # on a jump between two of them, where any two generators may land on either side; several tasks
        # average the jumps away, so the interval is checked there.
        return
    np.random.seed(seed)
    _, ci = rliable_library.get_interval_estimates(
        {"xy": (x, y)}, lambda a, b: np.array([rliable_metrics.probability_of_improvement(a, b)]), reps=2000
    )
    ours = robust.stratified_bootstrap_ci(robust.probability_of_improvement, x, y)
    np.testing.assert_allclose(ours, ci["xy"].ravel(), atol=BOOTSTRAP)


@pytest.mark.parametrize(
    ("n", "m", "shift"), [(3, 3, 0.5), (5, 5, 0.1), (10, 7, -0.2), (3, 3, 0.0), (4, 6, 1.5), (5, 5, -1.0)]
)
@pytest.mark.parametrize("comparisons", [1, 2, 3])
def test_aso_epsilon_min_equals_deepsigs(stats, n: int, m: int, shift: float, comparisons: int) -> None:
    _, aso = stats
    rng = np.random.default_rng(n * 100 + m)
    a, b = rng.normal(shift, 1.0, n), rng.normal(0.0, 1.0, m)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deepsig warns about deprecated arguments and equal distributions
        # Bonferroni's confidence, handed to deepsig directly: its num_comparisons adds alpha / m to the
        # confidence instead of taking 1 - alpha / m (equal for m = 2, weaker beyond)
        expected = deepsig.aso(
            a, b, confidence_level=1 - 0.05 / comparisons, num_comparisons=1, num_bootstrap_iterations=300,
            seed=1234, show_progress=False,
        )  # fmt: skip
    ours = aso.aso(a, b, confidence=0.95, comparisons=comparisons, bootstrap=300, seed=1234)
    assert ours.epsilon_min == pytest.approx(expected, abs=EXACT)
    assert ours.a_better == (expected < 0.5)
    if comparisons == 2:  # where deepsig's own correction and Bonferroni agree
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            own = deepsig.aso(a, b, num_comparisons=2, num_bootstrap_iterations=300, seed=1234, show_progress=False)
        assert ours.epsilon_min == pytest.approx(own, abs=EXACT)
    assert Path(aso.__file__).read_text().count("import deepsig") == 0  # the project itself needs no deepsig
