"""The comparison figure: every seed as a point, each variant's mean with its 95 % t-interval.

Showing the raw seeds (Weissgerber et al., 2015, "Beyond bar and line graphs") lets a reader see the
spread a mean +- CI summarises; grey lines join the runs that share a seed, the pairing every test in
the report relies on. One panel per metric. Drawn on matplotlib's Agg canvas directly, so importing
this module never changes the global pyplot backend.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_POINT_SPREAD = 0.12  # half-width of the horizontal offsets that keep seeds from overlapping
_MEAN_SHIFT = 0.25  # the mean and its interval sit right of the seeds, not on top of them


def plot_comparison(report: dict[str, Any]) -> Figure:
    """Draw one panel per metric of a comparison report (schema: see compare.py)."""
    metrics = report["metrics"]
    variants = list(report["resources"])  # baseline first, then by name
    seeds = [str(seed) for seed in report["seeds"]]
    # Deterministic offsets, one per seed, so a seed sits at the same place in every column.
    offsets = np.linspace(-_POINT_SPREAD, _POINT_SPREAD, len(seeds)) if len(seeds) > 1 else np.zeros(1)
    width = max(3.0, 0.9 * len(variants) + 1.5)
    fig = Figure(figsize=(width * len(metrics), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    x = np.arange(len(variants))
    for ax, metric in zip(axes, metrics, strict=True):
        summaries = report["by_metric"][metric]["variants"]
        values = np.array([[summaries[v]["values"][s] for s in seeds] for v in variants])  # (variants, seeds)
        positions = x[:, None] + offsets[None, :]  # (variants, seeds)
        ax.plot(positions, values, color="0.8", linewidth=0.8, zorder=1)  # one line per seed across variants
        ax.scatter(positions.ravel(), values.ravel(), s=18, color="tab:blue", alpha=0.7, zorder=2, label="seed")
        means = np.array([summaries[v]["mean"] for v in variants])
        ci = np.array([summaries[v]["ci95"] for v in variants])  # (variants, 2)
        yerr = np.stack([means - ci[:, 0], ci[:, 1] - means])  # (2, variants): distances below and above
        ax.errorbar(
            x + _MEAN_SHIFT,
            means,
            yerr=yerr,
            fmt="o",
            color="black",
            capsize=4,
            markersize=6,
            zorder=3,
            label="mean, 95 % CI",
        )
        ax.set_xticks(x + _MEAN_SHIFT / 2, [f"{v}\n(baseline)" if v == report["baseline"] else v for v in variants])
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
        if len(variants) > 4:
            ax.tick_params(axis="x", labelrotation=30)
    axes[0].legend(loc="best", fontsize="small", frameon=False)
    fig.suptitle(f"{len(seeds)} seeds per variant, lines join runs with the same seed", fontsize="small")
    return fig


def comparison_png(report: dict[str, Any], dpi: int = 150) -> bytes:
    """The figure as PNG bytes (the caller writes them atomically)."""
    buffer = io.BytesIO()
    # No timestamp or version in the metadata: the same runs give the same bytes.
    plot_comparison(report).savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
