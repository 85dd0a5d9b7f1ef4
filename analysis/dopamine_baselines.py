"""Dopamine's published SAC learning curves on MuJoCo (google/dopamine ``baselines/mujoco/data/<task>.json``), as a
small table that a suite run can be set beside: ``analysis/data/dopamine_sac_<task>.csv``.

What the JSON holds, read against Dopamine's code (the docs' SAC page cites the lines):

- rows of ``{"Iteration", "Value", "Agent": "SAC"}``, one block per run, in file order, each block running over
  iterations 0, 10, ..., 3190 (every tenth of ``sac.gin``'s 3,200); the runs are not labelled, so they are numbered
  here by their block (``run_1`` ... ``run_5``);
- an iteration of Dopamine's ``ContinuousRunner`` with ``sac.gin`` (``training_steps = 1000``,
  ``max_steps_per_episode = 1000``) is one 1,000-step training episode (HalfCheetah never terminates), so iteration i
  covers agent steps 1000·i + 1 to 1000·(i + 1): ``agent_steps`` is its end;
- ``Value`` is that training episode's return, with sampled (not mean) actions (``baselines/mujoco/README.md``), the
  raw return (``clip_rewards = False``; the 0.1 reward scale acts inside the learner only). The suite's counterpart is
  ``charts/episodic_return``, not the evaluation return.

``python -m analysis.dopamine_baselines halfcheetah.json --task halfcheetah --commit <sha> --max-iteration 1000``
writes the table (the file from a clone of google/dopamine at that commit).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

DATA = Path(__file__).resolve().parent / "data"
STEPS_PER_ITERATION = 1000  # sac.gin: ContinuousRunner.training_steps, one 1,000-step episode


def read_json(path: Path) -> pd.DataFrame:
    """The JSON's rows as ``iteration``, ``agent_steps``, ``run``, ``return``; a run starts where iteration 0 comes
    again."""
    rows, run = [], 0
    for item in json.loads(Path(path).read_text()):
        if item["Agent"] != "SAC":
            raise ValueError(f"{path}: an entry of agent {item['Agent']!r}; the table is Dopamine's SAC")
        iteration = int(item["Iteration"])
        run += iteration == 0
        rows.append({"iteration": iteration, "agent_steps": STEPS_PER_ITERATION * (iteration + 1), "run": run,
                     "return": float(item["Value"])})
    return pd.DataFrame(rows)


def wide(long: pd.DataFrame, max_iteration: int | None = None) -> pd.DataFrame:
    """One row per iteration, a column per run (``run_1`` ...), iterations up to ``max_iteration``."""
    table = long.pivot_table(index=["iteration", "agent_steps"], columns="run", values="return").reset_index()
    table.columns = ["iteration", "agent_steps", *(f"run_{r}" for r in table.columns[2:])]
    return table if max_iteration is None else table[table.iteration <= max_iteration]


def load(task: str = "halfcheetah") -> pd.DataFrame:
    """The committed table, one row per recorded iteration, with each run's return."""
    return pd.read_csv(DATA / f"dopamine_sac_{task}.csv", comment="#")


def across_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Per iteration: the runs' mean, sample standard deviation, count, and the 95% CI of the mean (Student's t)."""
    runs = table.filter(like="run_")
    n = runs.notna().sum(axis=1)
    mean, std = runs.mean(axis=1), runs.std(axis=1, ddof=1)
    half = stats.t.ppf(0.975, n - 1) * std / np.sqrt(n)
    return pd.DataFrame({"iteration": table.iteration, "agent_steps": table.agent_steps, "mean": mean, "std": std,
                         "runs": n, "ci_low": mean - half, "ci_high": mean + half})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", type=Path, help="baselines/mujoco/data/<task>.json from a clone of google/dopamine")
    parser.add_argument("--task", default="halfcheetah")
    parser.add_argument("--commit", required=True, help="the google/dopamine commit the file was read at")
    parser.add_argument("--max-iteration", type=int, default=1000, help="keep iterations up to this (1M agent steps)")
    args = parser.parse_args()
    long = read_json(args.json)
    table = wide(long, args.max_iteration)
    out = DATA / f"dopamine_sac_{args.task}.csv"
    header = [
        f"# Dopamine's SAC on MuJoCo {args.task}: google/dopamine baselines/mujoco/data/{args.task}.json at commit "
        f"{args.commit},",
        f"# {long.run.max()} runs (unlabelled blocks of the file, numbered here in file order), iterations "
        f"{long.iteration.min()}-{long.iteration.max()} every 10th; kept here: iterations <= {args.max_iteration}.",
        "# Each value is one training episode's raw return, sampled actions (baselines/mujoco/README.md). Iteration i "
        "of Dopamine's",
        "# ContinuousRunner (sac.gin: training_steps 1000, max_steps_per_episode 1000) is one 1,000-step episode over "
        "agent steps",
        "# 1000*i+1 .. 1000*(i+1); agent_steps is its end. Details and the gym version: docs/agents/sac.md.",
        f"# Made by: python -m analysis.dopamine_baselines {args.task}.json --task {args.task} --commit {args.commit} "
        f"--max-iteration {args.max_iteration}",
    ]
    body = table.to_csv(index=False, float_format="%.4f")
    out.write_text("\n".join(header) + "\n" + body)
    print(f"wrote {out} ({len(table)} iterations, {long.run.max()} runs)")


if __name__ == "__main__":
    main()
