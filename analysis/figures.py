"""The sweep's figures: the scaling law (Obando-Ceron et al. 2024, Fig. 1), the methods side by side, performance
profiles and learning curves. Each takes tables made by ``analysis.aggregate`` and writes PNG and PDF."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from rliable import library as rly  # noqa: E402
from rliable import metrics, plot_utils  # noqa: E402

from analysis.aggregate import numpy_seed  # noqa: E402


def save(fig, out: Path) -> list[Path]:
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths


SHOWN = {"gmp": "GMP", "set": "SET", "rigl": "RigL"}


def line_name(sparsity: float, method: str) -> str:
    """A line's legend: "dense" and "95% sparse (GMP)" for a plain GMP sweep, as before methods were compared, and
    so "dense+redo" or "95% sparse (RigL+wd)" for the others."""
    if sparsity == 0:
        return method
    base, *added = method.split("+")
    return f"{sparsity:.0%} sparse ({'+'.join([SHOWN.get(base, base), *added])})"


def scaling_law(summary: pd.DataFrame, ylabel: str, out: Path, scores: dict[str, str] | None = None) -> list[Path]:
    """IQM against width, one line per sparsity and method (a panel per score, agent and network), 95% CIs as bands.
    ``scores`` names the scores drawn, by their column suffix in ``summary`` ("final" is the plain ``iqm``), with
    their titles; by default the final evaluation only."""
    scores = scores or {"final": "final evaluation"}
    panels = [(key, title, group) for key, title in scores.items() for group in summary.groupby(["agent", "network"])]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.8), squeeze=False, layout="constrained")
    for ax, (key, title, ((agent, network), rows)) in zip(axes[0], panels, strict=True):
        iqm, low, high = ("iqm", "ci_low", "ci_high") if key == "final" else (f"iqm_{key}", f"ci_low_{key}",
                                                                               f"ci_high_{key}")
        for (sparsity, method), line in rows.groupby(["sparsity", "method"]):
            line = line.sort_values("width")
            drawn = ax.plot(line.width, line[iqm], marker="o", label=line_name(sparsity, method))[0]
            ax.fill_between(line.width, line[low], line[high], color=drawn.get_color(), alpha=0.2)
        ax.set_xticks(sorted(rows.width.unique()))
        ax.set_xlabel(f"width multiplier ({network})")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{agent}: {title}\nIQM, 95% stratified bootstrap CI", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save(fig, out)


def methods_iqm(summary: pd.DataFrame, ylabel: str, out: Path) -> list[Path]:
    """A bar per method with its 95% CI (a panel per agent, network and width, so that bars compare like with like);
    a method at several sparsities has a bar for each. A method keeps its colour across panels."""
    panels = list(summary.sort_values(["sparsity", "method"]).groupby(["agent", "network", "width"], sort=True))
    colors = dict(zip(sorted(summary.method.unique()), plt.cm.tab10.colors * 10, strict=False))
    most = max(len(rows) for _, rows in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(max(3.6, 1.2 + 0.7 * most) * len(panels), 3.8), squeeze=False,
                             sharey=True, layout="constrained")
    for ax, ((agent, network, width), rows) in zip(axes[0], panels, strict=True):
        repeated = rows.method.duplicated(keep=False)
        names = [f"{m} {s:.0%}" if r else m for m, s, r in zip(rows.method, rows.sparsity, repeated, strict=True)]
        ax.bar(names, rows.iqm, yerr=[rows.iqm - rows.ci_low, rows.ci_high - rows.iqm], capsize=3,
               color=[colors[m] for m in rows.method])
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
        ax.set_title(f"{agent} {network} width={width:g}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(ylabel)
    fig.suptitle("IQM per method, 95% stratified bootstrap CI", fontsize=10)
    return save(fig, out)


def performance_profile(matrices: dict[str, np.ndarray], xlabel: str, out: Path, reps: int = 2000,
                        seed: int = 0) -> list[Path]:
    """The fraction of runs scoring above τ, for every configuration (rliable's score distributions)."""
    top = max(float(np.max(m)) for m in matrices.values())
    low = min(0.0, min(float(np.min(m)) for m in matrices.values()))
    taus = np.linspace(low, max(top, 1.0) * 1.05, 41)
    with numpy_seed(seed):
        profiles, cis = rly.create_performance_profile(matrices, taus, reps=reps)
    colors = dict(zip(matrices, plt.cm.tab10.colors * 10, strict=False))
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    plot_utils.plot_performance_profiles(profiles, taus, performance_profile_cis=cis, ax=ax, xlabel=xlabel,
                                         colors=colors)
    ax.legend([Line2D([0], [0], color=c) for c in colors.values()], list(colors), fontsize=7, loc="upper right")
    return save(fig, out)


def learning_curves(curves: dict[str, pd.DataFrame], ylabel: str, out: Path, xlabel: str = "agent steps"
                    ) -> list[Path]:
    """IQM over runs and games of the normalised evaluation return, per configuration, against agent steps (an
    offline sweep's: gradient updates)."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for name, table in curves.items():  # table: rows = agent steps, columns = runs
        ax.plot(table.index, [metrics.aggregate_iqm(row.to_numpy()) for _, row in table.iterrows()], marker="o",
                ms=3, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("learning curves: IQM over runs and games")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out)
