"""From a sweep folder to figures: ``python plot.py <sweep_dir> [--out DIR] [--reps 2000]``.

Three scores per run (``analysis/scores.py``): the final evaluation, the mean of the evaluations in the last 20% of
the run (the robust one), and the training return of the last 100 episodes. Each is normalised per game
(``analysis/normalize.py``) and aggregated by rliable (``analysis/aggregate.py``), and each method is set against
dense at the same width (``analysis/comparison.py``): the IQM difference with its CI, a stratified permutation test,
and the interaction with width (the difference at this width minus the one at the smallest).

Writes ``scaling_law.png/.pdf`` (IQM against width, a line per sparsity and method, 95% stratified bootstrap CIs; a
panel for the robust score beside one for the final evaluation), ``methods_iqm.png/.pdf`` (a bar per method with its
CI, when the sweep has two methods or more: dense, gmp, rigl, dense+redo, ...), ``performance_profile.png/.pdf``,
``learning_curves.png/.pdf`` and ``summary.csv`` (a row per configuration, method included: for each score its IQM
and CI, against dense its difference, CI, p-value and interaction; runs, seeds and games), prints the same, and lists
every run that failed, did not finish or was left out.

``--reps`` resamples (bootstrap and permutations) give a figure in seconds; the figures committed under
``analysis/figures/`` say the count they were made with (``--reps 50000``, rliable's default, for the published ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.aggregate import CONFIG_KEYS, aggregate, label, score_matrices
from analysis.comparison import against_dense
from analysis.normalize import normalize
from analysis.scores import COLUMN, SCORES, add_scores
from analysis.significance import p_text
from analysis.sweep_runs import clock, learning_curve, load_runs, missing_runs

YLABEL = {"atari": "human-normalised score", "minatar": "normalised score (1 = smallest dense)",
          "mujoco": "normalised score (0 = random, 1 = smallest dense)",
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


def summary_table(runs: pd.DataFrame, reps: int, seed: int) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """A row per configuration: the final score's IQM and CI as ``iqm``, ``ci_low``, ``ci_high``, each other score's
    as ``iqm_<score>`` etc., and against dense each score's ``diff_<score>``, ``p_value_<score>``,
    ``interaction_<score>`` with their CIs; and each score's comparison table."""
    summary, comparisons = None, {}
    for key in SCORES:
        column = "normalized" if key == "final" else f"normalized_{key}"
        if column not in runs:
            continue
        matrices, info, _ = score_matrices(runs, column)
        table = aggregate(matrices, info, reps=reps, seed=seed)
        comparisons[key] = against_dense(matrices, info, reps, seed)
        extra = comparisons[key].drop(columns=["runs", "dense_runs"])
        table = table.merge(extra, on=CONFIG_KEYS, how="left")
        if key != "final":
            table = table.drop(columns=["runs", "seeds", "games"])
            table = table.rename(columns={c: f"{c}_{key}" for c in table.columns if c not in CONFIG_KEYS})
        else:
            table = table.rename(columns={c: f"{c}_final" for c in extra.columns if c not in CONFIG_KEYS})
        summary = table if summary is None else summary.merge(table, on=CONFIG_KEYS, how="left")
    return summary, comparisons


def report(summary: pd.DataFrame, comparisons: dict[str, pd.DataFrame], reps: int) -> str:
    """What the terminal shows: per score, each configuration's IQM and CI, then each method against dense."""
    lines = []
    for key, compared in comparisons.items():
        iqm, low, high = (("iqm", "ci_low", "ci_high") if key == "final" else
                          (f"iqm_{key}", f"ci_low_{key}", f"ci_high_{key}"))
        lines.append(f"\n{key}: {SCORES[key]} (normalised; IQM and 95% stratified bootstrap CI, {reps:,} resamples)")
        for row in summary.itertuples():
            name = label(row.agent, row.network, row.width, row.sparsity, row.method)
            lines.append(f"  {name:<46} runs={row.runs:<3} IQM {getattr(row, iqm):7.3f} "
                         f"[{getattr(row, low):.3f}, {getattr(row, high):.3f}]")
        for row in compared.itertuples():
            text = (f"  width {row.width:g} {row.method} - dense: {row.diff:+.3f} [{row.diff_ci_low:+.3f}, "
                    f"{row.diff_ci_high:+.3f}], permutation p = {p_text(row.p_value)} "
                    f"({row.runs} vs {row.dense_runs} runs)")
            if pd.notna(row.interaction):
                text += (f"; interaction from width {row.interaction_from_width:g}: {row.interaction:+.3f} "
                         f"[{row.interaction_ci_low:+.3f}, {row.interaction_ci_high:+.3f}]")
            lines.append(text)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--out", type=Path, help="where the figures and summary.csv go (default: the sweep folder)")
    parser.add_argument("--reps", type=int, default=2_000, help="bootstrap resamples and permutations (default: "
                        "seconds; the published figures used 50000, rliable's default)")
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
    runs = add_scores(runs, args.sweep_dir)
    try:
        runs["normalized"] = normalize(runs)
        for key in SCORES:
            if key != "final" and runs[COLUMN[key]].notna().any():  # offline runs have no training return
                runs[f"normalized_{key}"] = normalize(runs.assign(score=runs[COLUMN[key]]))
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
    summary, comparisons = summary_table(runs, args.reps, args.seed)
    summary.to_csv(out / "summary.csv", index=False)
    ylabel = YLABEL[envs[0]]
    shown = {key: SCORES[key] for key in ("late", "final") if key in comparisons}
    written = [out / "summary.csv", *figures.scaling_law(summary, f"IQM {ylabel}", out / "scaling_law", shown)]
    if summary.method.nunique() > 1:
        written += figures.methods_iqm(summary, f"IQM {ylabel}", out / "methods_iqm")
    written += figures.performance_profile(matrices, ylabel, out / "performance_profile", reps=max(args.reps // 4, 100),
                                           seed=args.seed)  # its bands are drawn, not reported: fewer resamples
    written += figures.learning_curves(curves_by_config(args.sweep_dir, runs), f"IQM {ylabel}", out / "learning_curves",
                                       clock(bool(modes[0])))
    print(report(summary, comparisons, args.reps))
    counts = runs.status.value_counts()
    print(f"{counts.get('complete', 0)} complete, {counts.get('failed', 0)} failed, "
          f"{counts.get('unfinished', 0)} unfinished runs; wrote {', '.join(p.name for p in written)} in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
