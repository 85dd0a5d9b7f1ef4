"""docs/results.md from a study folder: ``python -m analysis.study results/minatar_dqn_1m --out DIR``.

Writes ``learning_curves_per_game.png/.pdf`` (evaluation return against agent steps, a panel per game and width, a
line per sparsity: the mean over seeds with its 95% confidence interval, Student's t over the seeds) and
``results.md``: a row per game × width × sparsity with the final evaluation return (mean ± std over seeds), the
training return of the last 100 episodes (what the MinAtar paper plots), the wall time per run and the core-hours
of the cell (one core a run), then the study's total. A resumed run's wall time adds its earlier processes to the
last one's (``summary.json`` holds only the last): each from its own ``charts/SPS_cumulative`` rows
(``charts/updates_per_second_cumulative`` offline). Only complete
runs count; the others are listed. The scaling figure (IQM against width with rliable's CIs) is ``plot.py``'s, on
the same folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from analysis.figures import save
from analysis.learning_curve import eval_curve, open_metrics
from analysis.sweep_runs import clock, load_runs
from core.run_files import SUMMARY

TRAINING_EPISODES = 100  # the MinAtar paper's curves: a moving average over the last 100 training episodes


def training_return(run_dir: Path, episodes: int = TRAINING_EPISODES) -> float:
    """Mean return of the run's last ``episodes`` training episodes (ε-greedy, as logged)."""
    returns = []
    with open_metrics(run_dir) as f:
        for line in f:
            row = json.loads(line)
            if "charts/episodic_return" in row:
                returns.append(row["charts/episodic_return"])
    return float(np.mean(returns[-episodes:])) if returns else float("nan")


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
    return done


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean over axis 0 and the half-width of its Student-t interval (0 for a single seed)."""
    n = values.shape[0]
    mean = values.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    return mean, stats.t.ppf(0.5 + level / 2, n - 1) * values.std(axis=0, ddof=1) / np.sqrt(n)


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
    """An offline study has no training episodes, so no training-return column."""
    online = not done.offline.any()
    train_head = " training return, last 100 episodes |" if online else ""
    lines = [f"| game | width | sparsity | seeds | final evaluation return, mean ± std |{train_head} wall time per "
             "run, min | core-hours |", "|---|---|---|---|---|" + "---|" * (online + 2)]
    for (game, width, sparsity), rows in done.groupby(["game", "width", "sparsity"]):
        score, train = rows.score.to_numpy(), rows.training_return.to_numpy()
        spread = f" ± {score.std(ddof=1):.2f}" if len(score) > 1 else ""  # one seed has no spread to show
        train_cell = f" {train.mean():.2f} |" if online else ""
        lines.append(f"| {game} | {width:g} | {sparsity:g} | {len(rows)} | {score.mean():.2f}{spread} |{train_cell} "
                     f"{rows.wall_time_s.mean() / 60:.1f} | {rows.wall_time_s.sum() / 3600:.2f} |")
    lines.append(f"\n{len(done)} complete runs, {done.wall_time_s.sum() / 3600:.2f} core-hours in the training loop.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    runs = load_runs(args.study)
    for row in runs[runs.status != "complete"].itertuples():
        print(f"{row.status}: {row.run}")
    done = study_table(args.study)
    args.out.mkdir(parents=True, exist_ok=True)
    curves_figure(args.study, done, args.out)
    (args.out / "results.md").write_text(markdown(done))
    print(markdown(done))


if __name__ == "__main__":
    main()
