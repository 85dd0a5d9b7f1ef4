"""Per-game score normalisation, so that games can be aggregated.

- Atari: human-normalised, (score − random) / (human − random), with DQN Zoo's random and human scores
  (``analysis/data/atari_human_random.csv``, source in its header), as Obando-Ceron et al. 2024 report.
- MinAtar has no human scores. Its rule: (score − random) / max(baseline − random, 1), where random is the
  uniform random policy's mean return measured by the suite (``analysis/data/minatar_random.csv``, made by
  ``python -m analysis.random_scores``) and baseline is the mean final score of the sweep's own dense network at
  its smallest width (the same agent, all seeds; method "dense", without ReDo, resets or weight decay): 0 is
  random, 1 is the unscaled dense agent, the reference of the paper's "+60% over the dense baseline". The floor of
  one reward point keeps a baseline that has not learned (a short run) from inflating the scale. MinAtar scores are
  therefore relative to the sweep, not to a fixed table.
- dm_control: return ÷ 1000. Every task's episode is 1,000 control steps with a reward in [0, 1] each (``env.dmc``
  sums ``action_repeat`` steps into one agent step, so the bound holds whatever it is): 0 to 1, the scale of the
  DMC papers' plots.
- Classic control: (score − random) / (solved − random), random measured by the suite
  (``analysis/data/classic_random.csv``, ``python -m analysis.random_scores --env classic``) and solved =
  Gymnasium's ``reward_threshold`` for the id (CartPole-v1 475, Acrobot-v1 −100, MountainCar-v0 −110,
  MountainCarContinuous-v0 90). Pendulum-v1 has none; its upper anchor is 0, the most a return can be (every
  step's reward is ≤ 0).
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / "data"


def reference_table(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / name, comment="#").set_index("game")


def human_normalized(game: str, score):
    table = reference_table("atari_human_random.csv")
    if game not in table.index:
        raise ValueError(f"no human score for Atari game {game!r}; the table has: {', '.join(table.index)}")
    random, human = table.loc[game, ["random", "human"]]
    return (np.asarray(score, dtype=float) - random) / (human - random)


DMC_MAX_RETURN = 1000.0
PENDULUM_BEST = 0.0


def classic_normalized(game: str, score):
    table = reference_table("classic_random.csv")
    if game not in table.index:
        raise ValueError(f"no random score for classic-control id {game!r}; the table has: {', '.join(table.index)}")
    solved = gym.spec(game).reward_threshold
    solved = PENDULUM_BEST if solved is None else solved
    random = table.loc[game, "random"]
    return (np.asarray(score, dtype=float) - random) / (solved - random)


def minatar_baselines(runs: pd.DataFrame) -> pd.Series:
    """Baseline score per (agent, game): the mean score of the plain dense runs at the smallest width in ``runs``."""
    dense = runs[(runs.method == "dense") & runs.score.notna()]
    smallest = dense[dense.width == dense.groupby(["agent", "game"]).width.transform("min")]
    return smallest.groupby(["agent", "game"]).score.mean()


def normalize(runs: pd.DataFrame, score_column: str = "score", sweep: pd.DataFrame | None = None) -> pd.Series:
    """The normalised ``score_column`` of every row (NaN where it is missing); each row's ``env`` picks the rule.
    ``sweep`` (default ``runs``), one row per run with its final ``score``, gives the MinAtar baselines."""
    out = pd.Series(np.nan, index=runs.index)
    random = reference_table("minatar_random.csv").random
    baselines = minatar_baselines(runs if sweep is None else sweep) if (runs.env == "minatar").any() else None
    for (env, agent, game), rows in runs.groupby(["env", "agent", "game"]):
        scores = rows[score_column]
        if env == "atari":
            out[rows.index] = human_normalized(game, scores)
        elif env == "minatar":
            if (agent, game) not in baselines.index:
                raise ValueError(f"MinAtar scores are normalised by the sweep's dense baseline, and {agent} on "
                                 f"{game} has no complete dense run (sparsity=0, no ReDo, reset or weight decay)")
            scale = max(baselines[(agent, game)] - random[game], 1.0)
            out[rows.index] = (scores - random[game]) / scale
        elif env == "dmc":
            out[rows.index] = scores / DMC_MAX_RETURN
        elif env == "classic":
            out[rows.index] = classic_normalized(game, scores)
        else:
            raise ValueError(f"env={env} has no normalisation rule (atari, minatar, dmc and classic have one)")
    return out
