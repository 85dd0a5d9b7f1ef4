"""Why pruning helps, as the paper argues it (Obando-Ceron et al. 2024, §5): against agent steps, dense against GMP
per width, the network-health metrics the runs log (``pruning/health.py``):

- the dormant fraction at τ = 0.1 (Sokar et al. 2023; the paper: pruned networks keep fewer dormant neurons);
- the effective rank, srank (Kumar et al. 2021; the paper: higher when pruned);
- the parameter norm (the paper: smaller when pruned; a 95%-sparse network's is smaller by construction);
- the variance of the Q-values (the paper: lower when pruned).

``python -m analysis.mechanism results/minatar_dqn_1m --out DIR`` writes ``mechanism.png/.pdf`` (a row per metric, a
column per width, mean over runs and games with a 95% Student-t interval) and prints, per panel, whether the paper's
direction shows: GMP's late value (mean over the last 20% of the run, per run) against dense's, with the stratified
permutation test of ``analysis.significance`` (labels permuted within each game).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from analysis.figures import plt, save
from analysis.learning_curve import open_metrics
from analysis.scores import LATE_FRACTION
from analysis.significance import mean_ci, p_text, permutation_test
from analysis.sweep_runs import load_runs

# tag (with the network's name), label, the paper's direction for the pruned network
METRICS = {"dormant/{net}/tau_0.1": ("dormant fraction, τ = 0.1", "lower"),
           "health/{net}/srank": ("effective rank (srank)", "higher"),
           "health/{net}/param_norm": ("parameter norm", "lower"),
           "health/{net}/q_var": ("Q-value variance", "lower")}


def health_curves(run_dir: Path, network: str = "online") -> pd.DataFrame:
    """The run's health rows: agent step as index, a column per metric of ``METRICS``."""
    tags = {tag.format(net=network): tag for tag in METRICS}
    rows = []
    with open_metrics(run_dir) as f:
        for line in f:
            if '"health/' not in line and '"dormant/' not in line:
                continue
            row = json.loads(line)
            found = {tags[t]: row[t] for t in tags if t in row}
            if found:
                rows.append({"step": row["step"], **found})
    return pd.DataFrame(rows).groupby("step").last() if rows else pd.DataFrame(columns=list(METRICS))


def late_mean(curve: pd.Series, fraction: float = LATE_FRACTION) -> float:
    last = curve.index.max()
    return float(curve[curve.index >= last - round(fraction * last)].mean())


def direction(done: pd.DataFrame, curves: dict[str, pd.DataFrame], metric: str, width: float, reps: int,
              seed: int = 0) -> dict:
    """GMP against dense at ``width`` on the metric's late mean: the means, whether the paper's direction shows,
    and the permutation p-value (runs × games matrices, seeds complete on every game)."""
    tables = {}
    for method in ("dense", "gmp"):
        rows = done[(done.width == width) & (done.method == method)]
        values = pd.DataFrame({"seed": rows.seed, "game": rows.game,
                               "value": [late_mean(curves[r][metric]) for r in rows.run]})
        tables[method] = values.pivot_table(index="seed", columns="game", values="value").dropna()
    games = sorted(set(tables["dense"].columns) & set(tables["gmp"].columns))
    gmp, dense = tables["gmp"][games].to_numpy(), tables["dense"][games].to_numpy()
    _, p = permutation_test(gmp, dense, reps, seed)
    wanted = METRICS[metric][1]
    shows = gmp.mean() < dense.mean() if wanted == "lower" else gmp.mean() > dense.mean()
    return {"metric": metric, "width": width, "dense": float(dense.mean()), "gmp": float(gmp.mean()),
            "paper": wanted, "shows": bool(shows), "p_value": p, "runs": f"{gmp.size} vs {dense.size}"}


def mechanism(study: Path, out: Path, reps: int = 2_000, network: str = "online") -> tuple[list[Path], pd.DataFrame]:
    """The figure and a row per (metric, width) on the paper's direction."""
    out.mkdir(parents=True, exist_ok=True)
    runs = load_runs(study)
    done = runs[(runs.status == "complete") & runs.method.isin(["dense", "gmp"])]
    curves = {r: health_curves(study / r, network) for r in done.run}
    done = done[[not curves[r].empty and set(METRICS) <= set(curves[r].columns) for r in done.run]]
    widths = sorted(done.width.unique())
    verdicts = []
    fig, axes = plt.subplots(len(METRICS), len(widths), figsize=(4.2 * len(widths), 2.8 * len(METRICS)),
                             squeeze=False, layout="constrained")
    for i, (metric, (name, _)) in enumerate(METRICS.items()):
        for j, width in enumerate(widths):
            ax = axes[i][j]
            for method in ("dense", "gmp"):
                rows = done[(done.width == width) & (done.method == method)]
                if rows.empty:
                    continue
                table = pd.concat([curves[r][metric].rename(r) for r in rows.run], axis=1).dropna()
                mean, half = mean_ci(table.to_numpy().T)
                shown = "dense" if method == "dense" else f"GMP {rows.sparsity.iloc[0]:.0%}"
                ax.plot(table.index, mean, label=f"{shown} ({table.shape[1]} runs)", lw=1.2)
                ax.fill_between(table.index, mean - half, mean + half, alpha=0.25)
            verdict = direction(done, curves, metric, width, reps)
            verdicts.append(verdict)
            here = verdict["paper"] if verdict["shows"] else {"lower": "higher", "higher": "lower"}[verdict["paper"]]
            ax.set_title(f"width {width:g}: {name}\npaper: {verdict['paper']} when pruned; here: {here} "
                         f"(p = {verdict['p_value']:.3f})", fontsize=9)
            ax.set_xlabel("agent steps")
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(name)
            ax.legend(fontsize=7)
    return save(fig, out / "mechanism"), pd.DataFrame(verdicts)


def markdown(verdicts: pd.DataFrame) -> str:
    lines = ["| metric | width | dense, last 20% | GMP, last 20% | paper: GMP is | direction shows? | permutation p | "
             "runs |",
             "|---|---|---|---|---|---|---|---|"]
    for row in verdicts.itertuples():
        lines.append(f"| {METRICS[row.metric][0]} | {row.width:g} | {row.dense:.4g} | {row.gmp:.4g} | {row.paper} | "
                     f"{'yes' if row.shows else 'no'} | {p_text(row.p_value)} | {row.runs} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=2_000, help="permutations per panel")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written, verdicts = mechanism(args.study, args.out, args.reps)
    (args.out / "mechanism.md").write_text(markdown(verdicts))
    print(markdown(verdicts))
    print(f"wrote {', '.join(str(p) for p in written)} and {args.out / 'mechanism.md'}")


if __name__ == "__main__":
    main()
