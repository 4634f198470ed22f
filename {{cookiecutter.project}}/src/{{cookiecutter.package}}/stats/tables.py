"""Format a comparison report as tables: Markdown, LaTeX (booktabs) and the terminal (rich).

All three renderers share one table model (`Table`), built once from the report, so the paper's
table, the README's and the terminal's show the same cells. Numbers of a metric share one precision:
two significant digits of its largest standard deviation, the convention for mean +- std.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text


@dataclass(frozen=True)
class Column:
    label: str
    latex: str | None = None  # LaTeX header; None: same as label, escaped
    align: str = "r"
    in_latex: bool = True  # wide columns (values by seed) stay out of the paper table


@dataclass
class Table:
    title: str
    key: str  # short slug for LaTeX labels
    columns: list[Column]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- number formatting


def decimals_for(scales: Sequence[float]) -> int | None:
    """Decimals giving two significant digits of the largest scale; None when every scale is 0."""
    scale = max((abs(s) for s in scales), default=0.0)
    if scale == 0 or not math.isfinite(scale):
        return None
    return min(max(1 - math.floor(math.log10(scale)), 0), 8)


def format_number(x: float | None, decimals: int | None) -> str:
    """`x` with `decimals` places; without a scale (no spread) whole numbers stay whole, others get 4 digits."""
    if x is None:
        return "n/a"
    if decimals is None:
        return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:.4g}"
    return f"{x:.{decimals}f}"


def _interval(ci: Sequence[float], decimals: int | None) -> str:
    return f"[{format_number(ci[0], decimals)}, {format_number(ci[1], decimals)}]"


def _p(p: float | None, star: bool = False) -> str:
    """Three decimals, but three significant digits below 0.1, so that a p just under alpha (0.0496, *)
    and one just over it (0.0504) read as different numbers, not both as 0.050."""
    if p is None:
        return "n/a"
    text = "<0.001" if p < 0.001 else f"{p:.3f}" if p >= 0.1 else f"{p:.3g}"
    return text + " *" if star else text


def _count(x: float | None) -> str:
    """Parameter counts as 85.8M / 12.3k."""
    if x is None:
        return "-"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.3g}{unit}"
    return f"{x:.0f}"


def _optional(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


# ---------------------------------------------------------------- the tables


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _summary_table(report: dict[str, Any]) -> Table:
    baseline, metrics = report["baseline"], report["metrics"]
    columns = [Column("Variant", align="l")]
    columns += [Column(metric) for metric in metrics]
    columns += [Column("Params"), Column("GFLOPs"), Column("Train time (s)")]
    table = Table(f"Mean ± std over {len(report['seeds'])} seeds", "summary", columns)
    decimals = {m: decimals_for([v["std"] for v in report["by_metric"][m]["variants"].values()]) for m in metrics}
    for variant, resources in report["resources"].items():
        row = [f"{variant} (baseline)" if variant == baseline else variant]
        for metric in metrics:
            summary = report["by_metric"][metric]["variants"][variant]
            mean, std = (format_number(summary[key], decimals[metric]) for key in ("mean", "std"))
            row.append(f"{mean} ± {std}")
        row += [
            _count(resources["params"]),
            _optional(resources["gflops"], ".3g"),
            _optional(resources["train_seconds_mean"], ".1f"),
        ]
        table.rows.append(row)
    return table


def _variant_table(metric: str, section: dict[str, Any]) -> Table:
    columns = [
        Column("Variant", align="l"),
        Column("n"),
        Column("Mean"),
        Column("Std"),
        Column("95 % CI", r"95\,\% CI"),
        Column("Median"),
        Column("Values by seed", align="l", in_latex=False),
    ]
    table = Table(f"{metric}: per variant", f"{_slug(metric)}-variants", columns)
    decimals = decimals_for([v["std"] for v in section["variants"].values()])
    for variant, s in section["variants"].items():
        values = ", ".join(f"{seed}: {format_number(value, decimals)}" for seed, value in s["values"].items())
        table.rows.append(
            [
                variant,
                str(s["n"]),
                format_number(s["mean"], decimals),
                format_number(s["std"], decimals),
                _interval(s["ci95"], decimals),
                format_number(s["median"], decimals),
                values,
            ]
        )
    return table


def _seed_count_note(name: str, pair: dict[str, Any], decimals: int | None) -> str:
    """The seed-count helper's answer for one pair, as a sentence."""
    count = pair["seed_count"]
    target = (
        f"detecting a difference of {count['difference']:g} (paired t-test, alpha {count['alpha']:g}, "
        f"power {count['power']:g}, sd of differences {format_number(pair['sd_diff'], decimals)})"
    )
    if count["power_now"] is None:
        return f"{name}: {target}: n/a, {count['note']}"
    needed = f"{count['seeds_needed']} seeds" if count["seeds_needed"] is not None else count["note"]
    return f"{name}: {target} needs {needed} (have {pair['n']}, power now {count['power_now']:.2f})"


def _pair_table(metric: str, section: dict[str, Any], correction: str, alpha: float) -> Table:
    adjusted, short = f"p_{correction}", "Holm" if correction == "holm" else "BH"
    columns = [
        Column("Comparison (a − b)", r"Comparison ($a - b$)", align="l"),
        Column("n"),
        Column("Δ mean", r"$\Delta$ mean"),
        Column("95 % CI (t)", r"95\,\% CI ($t$)"),
        Column("95 % CI (bootstrap)", in_latex=False),  # the paper table keeps the t-interval only
        Column("t", "$t$"),
        Column("p (t)", "$p$ ($t$)"),
        Column(f"p ({short})", f"$p$ ({short})"),
        Column("W", in_latex=False),
        Column("p (Wilcoxon)", "$p$ (Wilcoxon)"),
        Column("d_z", "$d_z$"),
    ]
    table = Table(f"{metric}: paired tests", f"{_slug(metric)}-pairs", columns)
    # Pairing shrinks the spread, so differences get their own precision: two digits of the largest sd.
    decimals = decimals_for([pair["sd_diff"] for pair in section["pairs"]])
    notes: list[str] = []
    for pair in section["pairs"]:
        name = f"{pair['a']} − {pair['b']}"
        t, w, dz = pair["t_test"], pair["wilcoxon"], pair["cohen_dz"]
        table.rows.append(
            [
                name,
                str(pair["n"]),
                format_number(pair["mean_diff"], decimals),
                _interval(pair["ci95_diff"], decimals),
                _interval(pair["bootstrap_ci95_diff"], decimals),
                "n/a" if t["statistic"] is None else f"{t['statistic']:.2f}",
                _p(t["p"]),
                _p(pair[adjusted], star=pair["significant"]),
                "n/a" if w["statistic"] is None else f"{w['statistic']:g}",
                _p(w["p"]),
                "n/a" if dz is None else f"{dz:.2f}",
            ]
        )
        for test_name, test in (("t-test", t), ("Wilcoxon", w)):
            if test["note"]:
                # A None p is specific to the pair; a caveat such as the Wilcoxon floor is shared by all.
                notes.append(
                    f"{name}: {test_name} n/a, {test['note']}" if test["p"] is None else f"{test_name}: {test['note']}"
                )
        if pair["seed_count"] is not None:
            notes.append(_seed_count_note(name, pair, decimals))
    method = "Holm's step-down" if correction == "holm" else "Benjamini-Hochberg"
    family = sum(pair["t_test"]["p"] is not None for pair in section["pairs"])
    untested = len(section["pairs"]) - family
    table.notes.append(
        f"p ({short}): the t-test's p adjusted by {method} over the {family} pair{'s' * (family != 1)} of {metric} "
        "with a t-test"
        + (f" ({untested} without one: no spread in their differences)" if untested else "")
        + f"; * marks p ({short}) < {alpha:g}. Differences are a - b over the same seeds."
    )
    friedman = section["friedman"]
    if friedman is not None:
        if friedman["p"] is None:
            table.notes.append(f"Friedman test over {friedman['k']} variants: n/a, {friedman['note']}.")
        else:
            table.notes.append(
                f"Friedman test over {friedman['k']} variants x {friedman['n']} seeds: "
                f"χ² = {friedman['statistic']:.2f}, p = {_p(friedman['p'])}."
            )
    table.notes += [note if note.endswith(".") else note + "." for note in dict.fromkeys(notes)]
    return table


def _robust_table(metric: str, section: dict[str, Any]) -> Table:
    """IQM per variant, probability of improvement and Almost Stochastic Order per pair (no normality assumed)."""
    columns = [
        Column("Comparison (a vs b)", r"Comparison ($a$ vs $b$)", align="l"),
        Column("IQM a [95 % CI]", r"IQM $a$ [95\,\% CI]"),
        Column("P(a > b) [95 % CI]", r"$P(a > b)$ [95\,\% CI]"),
        Column("ASO ε_min (a > b)", r"ASO $\varepsilon_{\min}$ ($a > b$)"),
        Column("ASO ε_min (b > a)", r"ASO $\varepsilon_{\min}$ ($b > a$)"),
    ]
    table = Table(f"{metric}: robust comparisons", f"{_slug(metric)}-robust", columns)
    variants = section["variants"]
    decimals = decimals_for([v["std"] for v in variants.values()])
    for pair in section["pairs"]:
        iqm = variants[pair["a"]]
        improvement, order = pair["prob_improvement"], pair["aso"]
        table.rows.append(
            [
                f"{pair['a']} vs {pair['b']}",
                f"{format_number(iqm['iqm'], decimals)} {_interval(iqm['iqm_ci95'], decimals)}",
                f"{improvement['p']:.2f} [{improvement['ci95'][0]:.2f}, {improvement['ci95'][1]:.2f}]",
                f"{order['epsilon_min']:.2f}" + (" *" if order["a_larger"] else ""),
                f"{order['epsilon_min_reverse']:.2f}" + (" *" if order["b_larger"] else ""),
            ]
        )
    if section["pairs"]:
        aso = section["pairs"][0]["aso"]
        table.notes.append(
            "IQM: interquartile mean of the seeds; P(a > b): probability that a run of a scores higher than a run "
            "of b (ties count half), both with stratified-bootstrap 95 % intervals (Agarwal et al., 2021). "
            f"ASO: epsilon_min of Almost Stochastic Order at confidence {aso['confidence']:.3g} (corrected for "
            f"{len(section['pairs'])} comparison{'s' * (len(section['pairs']) != 1)}); * marks epsilon_min < "
            f"{aso['tau']:g}, i.e. that side is stochastically larger (Dror et al., 2019). Larger values are "
            "better for accuracies, smaller for losses."
        )
    return table


def build_tables(report: dict[str, Any]) -> list[Table]:
    """The summary table, then per metric its per-variant and paired-test tables."""
    tables = [_summary_table(report)]
    for metric in report["metrics"]:
        section = report["by_metric"][metric]
        tables.append(_variant_table(metric, section))
        if section["pairs"]:
            tables.append(_pair_table(metric, section, report["correction"], report["alpha"]))
            tables.append(_robust_table(metric, section))
    return tables


def _preamble(report: dict[str, Any]) -> list[str]:
    variants, seeds = list(report["resources"]), report["seeds"]
    against = f"against baseline `{report['baseline']}`" if report["baseline"] else "all pairs"
    lines = [
        f"{len(variants)} variants x {len(seeds)} seeds ({', '.join(map(str, seeds))}), paired by seed; "
        f"tests {against}; alpha {report['alpha']:g}.",
    ]
    if report["skipped"]:
        lines.append(f"Skipped unfinished runs (no metrics.json): {', '.join(report['skipped'])}.")
    if report.get("config_check", "passed") != "passed":
        lines.append(f"Config check {report['config_check']}.")
    return lines


# ---------------------------------------------------------------- renderers


def to_markdown(report: dict[str, Any]) -> str:
    """GitHub-flavoured Markdown: a heading and preamble, then each table with its notes."""
    lines = [f"# Comparison: {report['directory']}", "", *_preamble(report), ""]
    for table in build_tables(report):
        lines += [f"## {table.title}", ""]
        lines.append("| " + " | ".join(c.label for c in table.columns) + " |")
        lines.append("|" + "|".join(":---" if c.align == "l" else "---:" for c in table.columns) + "|")
        lines += ["| " + " | ".join(cell.replace("|", r"\|") for cell in row) + " |" for row in table.rows]
        if table.notes:
            lines += ["", *(f"- {note}" for note in table.notes)]
        lines.append("")
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_"}
_LATEX_SPECIAL |= {"{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "−": "$-$", "Δ": r"$\Delta$", "χ²": r"$\chi^2$", "<": "$<$"}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters, then spell the report's few symbols in math mode."""
    text = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)
    for symbol, latex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, latex)
    return re.sub(r"(?<!\w)-(?=\d)", "$-$", text)  # a minus sign, not a hyphen, before a number


def to_latex(report: dict[str, Any]) -> str:
    """One booktabs `table` float per table, ready to `\\input` (needs `\\usepackage{booktabs}`)."""
    lines = ["% Generated by the compare entry point; needs \\usepackage{booktabs}.", ""]
    for table in build_tables(report):
        keep = [i for i, column in enumerate(table.columns) if column.in_latex]
        lines += ["\\begin{table}[t]", "\\centering", "\\small"]
        lines.append("\\caption{" + latex_escape(table.title) + "}")
        lines.append("\\label{tab:" + table.key + "}")
        lines.append("\\begin{tabular}{" + "".join(table.columns[i].align for i in keep) + "}")
        lines.append("\\toprule")
        headers = [table.columns[i].latex or latex_escape(table.columns[i].label) for i in keep]
        lines.append(" & ".join(headers) + " \\\\")
        lines.append("\\midrule")
        lines += [" & ".join(latex_escape(row[i]) for i in keep) + " \\\\" for row in table.rows]
        lines += ["\\bottomrule", "\\end{tabular}"]
        if table.notes:
            lines += ["\\par\\smallskip\\footnotesize", " ".join(latex_escape(note) for note in table.notes)]
        lines += ["\\end{table}", ""]
    return "\n".join(lines)


def print_report(report: dict[str, Any], console: Console | None = None) -> None:
    """Print every table with rich; notes go below each table."""
    console = console or Console()
    for line in _preamble(report):
        console.print(line, markup=False, highlight=False)
    for table in build_tables(report):
        # Cells are plain text: "[0.1, 0.2]" or a variant name must never be parsed as rich markup.
        rich_table = RichTable(title=escape(table.title), title_justify="left")
        for column in table.columns:
            rich_table.add_column(Text(column.label), justify="left" if column.align == "l" else "right")
        for row in table.rows:
            rich_table.add_row(*map(Text, row))
        console.print(rich_table)
        for note in table.notes:
            console.print(f"  {note}", markup=False, highlight=False)
