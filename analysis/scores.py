"""The three scores of a run, each a different answer to "how well did it end":

- ``final``: the final evaluation (``summary.json``'s ``final_eval_return``), what the paper's figures report. One
  evaluation of ``eval.episodes`` episodes: noisy (on MinAtar a 10-episode evaluation has a standard error of 2-21
  return points).
- ``late``: the mean of the evaluations in the last 20% of the run (agent steps ≥ 0.8 × the last evaluation's step;
  at 1M steps with one every 100k, those at 0.8M, 0.9M and 1M). Three evaluations instead of one: the robust score.
- ``train``: the mean return of the last 100 training episodes (ε-greedy, as logged), what the MinAtar paper plots.
  An offline run has no training episodes, so no ``train`` score.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.learning_curve import eval_curve, open_metrics

SCORES = {"final": "final evaluation", "late": "mean evaluation, last 20% of the run",
          "train": "training return, last 100 episodes"}
COLUMN = {"final": "score", "late": "score_late", "train": "score_train"}  # "score" is the sweep's final score
LATE_FRACTION = 0.2
TRAINING_EPISODES = 100


def late_evaluation(run_dir: Path, fraction: float = LATE_FRACTION) -> float:
    """Mean of the evaluations at agent steps ≥ (1 − ``fraction``) × the last evaluation's step (an offline run's
    steps are its updates)."""
    steps, means, _ = eval_curve(run_dir)
    start = steps[-1] - round(fraction * steps[-1])
    return float(np.mean([m for s, m in zip(steps, means, strict=True) if s >= start]))


def training_return(run_dir: Path, episodes: int = TRAINING_EPISODES) -> float:
    """Mean return of the run's last ``episodes`` training episodes (ε-greedy, as logged); NaN without any."""
    returns = []
    with open_metrics(run_dir) as f:
        for line in f:
            if '"charts/episodic_return"' not in line:
                continue
            row = json.loads(line)
            if "charts/episodic_return" in row:
                returns.append(row["charts/episodic_return"])
    return float(np.mean(returns[-episodes:])) if returns else float("nan")


def add_scores(runs: pd.DataFrame, sweep_dir: Path) -> pd.DataFrame:
    """``runs`` (``analysis.sweep_runs.load_runs``) with ``score_late`` and ``score_train`` beside the final
    ``score``, for its complete runs (NaN for the others)."""
    out = runs.copy()
    done = out.status == "complete"
    out["score_late"] = [late_evaluation(sweep_dir / r) if ok else np.nan for r, ok in zip(out.run, done, strict=True)]
    out["score_train"] = [training_return(sweep_dir / r) if ok else np.nan for r, ok in zip(out.run, done, strict=True)]
    return out
