"""From a sweep folder to figures: ``python plot.py <sweep_dir> [--out DIR] [--reps 50000]``.

Writes ``scaling_law.png/.pdf`` (IQM against width, a line per sparsity and method, 95% stratified bootstrap CIs),
``methods_iqm.png/.pdf`` (a bar per method with its CI, when the sweep has two methods or more: dense, gmp, rigl,
dense+redo, ...), ``performance_profile.png/.pdf``, ``learning_curves.png/.pdf`` and ``summary.csv`` (a row per
configuration, method included: IQM, CI low and high, runs, seeds and games), and lists every run that failed, did
not finish or was left out.
Scores are normalised per game (``analysis/normalize.py``) and aggregated by rliable (``analysis/aggregate.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.aggregate import CONFIG_KEYS, aggregate, label, score_matrices
from analysis.normalize import normalize
from analysis.sweep_runs import clock, learning_curve, load_runs, missing_runs

YLABEL = {"atari": "human-normalised score", "minatar": "normalised score (1 = smallest dense)",
          "dmc": "return / 1000", "classic": "normalised score (0 = random, 1 = solved)"}


def curves_by_config(sweep_dir: Path, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Normalised evaluation curves, one column per complete run, on the agent steps all of a config's runs share."""
    done = runs[runs.status == "complete"]
    points = []
    for row in done.itertuples():
        curve = learning_curve(sweep_dir, row.run)
        points += [{**row._asdict(), "step": step, "curve": value} for step, value in curve.items()]
    table = pd.DataFrame(points)
    table["normalized_curve"] = normalize(table, "curve", sweep=runs)
    out = {}
    for key, rows in table.groupby(CONFIG_KEYS):
        out[label(*key)] = rows.pivot_table(index="step", columns="run", values="normalized_curve").dropna()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help="where the figures and summary.csv go (default: the sweep folder)")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples (rliable's default)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    args = parser.parse_args(argv)
    out = args.out or args.sweep_dir
    if not args.sweep_dir.is_dir():
        print(f"error: sweep_dir={args.sweep_dir} is not a folder", file=sys.stderr)
        return 2
    runs = load_runs(args.sweep_dir)
    if runs.empty:
        print(f"error: sweep_dir={args.sweep_dir} holds no run folder (no config.yaml below it)", file=sys.stderr)
        return 2
    for job in missing_runs(args.sweep_dir):
        print(f"missing: {job} (no run folder)")
    for state in ("failed", "unfinished"):
        for row in runs[runs.status == state].itertuples():
            why = f": {row.error}" if isinstance(row.error, str) else ""
            print(f"{state}: {row.run}{why}")
    envs = runs.env.dropna().unique()
    if len(envs) == 0:
        print("error: no run folder of the sweep holds a readable config", file=sys.stderr)
        return 1
    if len(envs) > 1:
        print(f"error: one sweep, one benchmark; {args.sweep_dir} mixes env={', '.join(envs)}", file=sys.stderr)
        return 2
    modes = runs.offline.dropna().unique()
    if len(modes) > 1:
        print(f"error: one sweep, one clock; {args.sweep_dir} mixes online runs (agent steps) and offline runs "
              "(gradient updates)", file=sys.stderr)
        return 2
    try:
        runs["normalized"] = normalize(runs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    matrices, info, left_out = score_matrices(runs)
    for line in left_out:
        print(line)
    if not matrices:
        print("error: no configuration has a complete run", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    summary = aggregate(matrices, info, reps=args.reps, seed=args.seed)
    summary.to_csv(out / "summary.csv", index=False)
    ylabel = YLABEL[envs[0]]
    written = [out / "summary.csv", *figures.scaling_law(summary, f"IQM {ylabel}", out / "scaling_law")]
    if summary.method.nunique() > 1:
        written += figures.methods_iqm(summary, f"IQM {ylabel}", out / "methods_iqm")
    written += figures.performance_profile(matrices, ylabel, out / "performance_profile", seed=args.seed)
    written += figures.learning_curves(curves_by_config(args.sweep_dir, runs), f"IQM {ylabel}", out / "learning_curves",
                                       clock(bool(modes[0])))
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    counts = runs.status.value_counts()
    print(f"{counts.get('complete', 0)} complete, {counts.get('failed', 0)} failed, "
          f"{counts.get('unfinished', 0)} unfinished runs; wrote {', '.join(p.name for p in written)} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
