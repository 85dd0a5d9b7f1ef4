"""docs/results.md from a study folder: ``python -m analysis.study results/minatar_dqn_1m --out DIR [--reps 2000]``.

Writes ``learning_curves_per_game.png/.pdf`` (evaluation return against agent steps, a panel per game and width, a
line per sparsity: the mean over seeds with its 95% confidence interval, Student's t over the seeds), the mechanism
figure of ``analysis/mechanism.py`` (``mechanism.png/.pdf`` and ``mechanism.md``; an online study of dense and GMP
runs) and ``results.md``: a row per game × width × sparsity with the three scores of ``analysis/scores.py`` (mean ±
std over seeds), the wall time per run and the core-hours of the cell (one core a run), then the study's total. A
resumed run's wall time counts all its processes (``summary.json``'s ``wall_time_s``; in folders written before the
loop kept them, reconstructed from ``resumes.jsonl`` and the ``charts/SPS_cumulative`` rows). Only complete runs
count; the others are listed. The scaling figure, the IQMs and the significance tests are ``plot.py``'s, on the same
folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.figures import save
from analysis.learning_curve import eval_curve, open_metrics
from analysis.mechanism import markdown as mechanism_markdown
from analysis.mechanism import mechanism
from analysis.scores import late_evaluation, training_return
from analysis.significance import mean_ci
from analysis.sweep_runs import clock, load_runs
from core.run_files import SUMMARY


def wall_time(run_dir: Path) -> float:
    """Seconds in the training loop over all of a run's processes. A run folder written since the loop kept them
    has ``wall_time_s_per_process`` in ``summary.json``, and ``wall_time_s`` is their sum. In an older one
    ``summary.json`` has the last process's only; each earlier one (a resume in ``resumes.jsonl`` ends it) ran from
    its start step to its last logged row at the cumulative speed that row reports: steps / ``charts/SPS_cumulative``,
    which times from the loop's start (offline: updates / ``charts/updates_per_second_cumulative``; an offline run's
    step is its update)."""
    summary = json.loads((run_dir / SUMMARY).read_text())
    seconds = summary["wall_time_s"]
    resumes = run_dir / "resumes.jsonl"
    if "wall_time_s_per_process" in summary or not resumes.is_file():
        return seconds
    ends = [json.loads(line)["env_step"] for line in resumes.read_text().splitlines() if line.strip()]
    rows = []
    with open_metrics(run_dir) as f:
        for line in f:
            row = json.loads(line)
            speed = row.get("charts/SPS_cumulative", row.get("charts/updates_per_second_cumulative"))
            if speed is not None:
                rows.append((row["step"], speed))
    start = 0
    for end in ends:
        last = [(step, sps) for step, sps in rows if start < step <= end]
        if last:
            step, sps = last[-1]
            seconds += (step - start) / sps
        start = end
    return seconds


def study_table(study: Path) -> pd.DataFrame:
    runs = load_runs(study)
    done = runs[runs.status == "complete"].copy()
    done["wall_time_s"] = [wall_time(study / r) for r in done.run]
    done["training_return"] = [training_return(study / r) for r in done.run]
    done["late_evaluation"] = [late_evaluation(study / r) for r in done.run]
    return done


def curves_figure(study: Path, done: pd.DataFrame, out: Path) -> list[Path]:
    import matplotlib  # heavy: only the command that draws pays for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is chosen

    games, widths = sorted(done.game.unique()), sorted(done.width.unique())
    fig, axes = plt.subplots(len(widths), len(games), figsize=(4 * len(games), 3 * len(widths)), squeeze=False)
    for (i, width), (j, game) in ((w, g) for w in enumerate(widths) for g in enumerate(games)):
        ax = axes[i][j]
        cell = done[(done.game == game) & (done.width == width)]
        for sparsity, rows in cell.groupby("sparsity"):
            curves = [pd.Series(*reversed(eval_curve(study / r)[:2])) for r in rows.run]
            table = pd.concat(curves, axis=1).dropna()
            mean, half = mean_ci(table.to_numpy().T)
            name = "dense" if sparsity == 0 else f"GMP {sparsity:.0%}"
            ax.plot(table.index, mean, label=f"{name} ({len(curves)} seeds)")
            ax.fill_between(table.index, mean - half, mean + half, alpha=0.25)
        ax.set_title(f"{game}, width {width:g}")
        ax.set_xlabel(clock(bool(cell.offline.any())))
        ax.set_ylabel("evaluation return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out / "learning_curves_per_game")


def markdown(done: pd.DataFrame) -> str:
    """The three scores of ``analysis.scores`` per cell, mean ± std over seeds (one seed has no spread to show); an
    offline study has no training episodes, so no training-return column."""
    online = not done.offline.any()
    train_head = " training return, last 100 episodes |" if online else ""
    lines = [f"| game | width | sparsity | seeds | final evaluation | evaluations, last 20% |{train_head} wall time "
             "per run, min | core-hours |", "|---|---|---|---|---|---|" + "---|" * (online + 2)]

    def cell(values) -> str:
        values = np.asarray(values, dtype=float)
        return f"{values.mean():.2f}" + (f" ± {values.std(ddof=1):.2f}" if len(values) > 1 else "")

    for (game, width, sparsity), rows in done.groupby(["game", "width", "sparsity"]):
        train_cell = f" {cell(rows.training_return)} |" if online else ""
        lines.append(f"| {game} | {width:g} | {sparsity:g} | {len(rows)} | {cell(rows.score)} | "
                     f"{cell(rows.late_evaluation)} |{train_cell} {rows.wall_time_s.mean() / 60:.1f} | "
                     f"{rows.wall_time_s.sum() / 3600:.2f} |")
    lines.append(f"\n{len(done)} complete runs, {done.wall_time_s.sum() / 3600:.2f} core-hours in the training loop "
                 "(a resumed run's processes all counted).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=2_000, help="permutations of the mechanism figure's tests")
    args = parser.parse_args(argv)
    runs = load_runs(args.study)
    for row in runs[runs.status != "complete"].itertuples():
        print(f"{row.status}: {row.run}")
    done = study_table(args.study)
    args.out.mkdir(parents=True, exist_ok=True)
    curves_figure(args.study, done, args.out)
    (args.out / "results.md").write_text(markdown(done))
    print(markdown(done))
    if not done.offline.any() and {"dense", "gmp"} <= set(done.method):
        verdicts = mechanism(args.study, args.out, args.reps)[1]
        (args.out / "mechanism.md").write_text(mechanism_markdown(verdicts))
        print(mechanism_markdown(verdicts))


if __name__ == "__main__":
    main()
