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
- Gymnasium's MuJoCo: MinAtar's rule, with the random policy's mean measured by the suite
  (``analysis/data/mujoco_random.csv``, ``python -m analysis.random_scores --env mujoco --episodes 100``). Dopamine
  and the SAC papers report raw returns per task, and MuJoCo returns have no common scale (HalfCheetah's random
  policy scores −285, HumanoidStandup's 33,259) and no fixed best; 1 = the sweep's dense network at its smallest
  width is the scale of the pruning paper's claims. Raw returns stay in each run's curves and in
  ``analysis.study``'s tables.
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


# families scaled from random (their table) to the sweep's smallest dense network, by their names in messages
SWEEP_RELATIVE = {"minatar": "MinAtar", "mujoco": "MuJoCo"}


def sweep_baselines(runs: pd.DataFrame) -> pd.Series:
    """Baseline score per (agent, game): the mean score of the plain dense runs at the smallest width in ``runs``."""
    dense = runs[(runs.method == "dense") & runs.score.notna()]
    smallest = dense[dense.width == dense.groupby(["agent", "game"]).width.transform("min")]
    return smallest.groupby(["agent", "game"]).score.mean()


def normalize(runs: pd.DataFrame, score_column: str = "score", sweep: pd.DataFrame | None = None) -> pd.Series:
    """The normalised ``score_column`` of every row (NaN where it is missing); each row's ``env`` picks the rule.
    ``sweep`` (default ``runs``), one row per run with its final ``score``, gives the MinAtar and MuJoCo baselines."""
    out = pd.Series(np.nan, index=runs.index)
    relative = runs.env.isin(list(SWEEP_RELATIVE)).any()
    baselines = sweep_baselines(runs if sweep is None else sweep) if relative else None
    for (env, agent, game), rows in runs.groupby(["env", "agent", "game"]):
        scores = rows[score_column]
        if env == "atari":
            out[rows.index] = human_normalized(game, scores)
        elif env in SWEEP_RELATIVE:
            random = reference_table(f"{env}_random.csv").random
            if game not in random.index:
                raise ValueError(f"no random score for {SWEEP_RELATIVE[env]} id {game!r}; the table has: "
                                 f"{', '.join(random.index)}")
            if (agent, game) not in baselines.index:
                raise ValueError(f"{SWEEP_RELATIVE[env]} scores are normalised by the sweep's dense baseline, and "
                                 f"{agent} on {game} has no complete dense run (sparsity=0, no ReDo, reset or weight "
                                 "decay)")
            scale = max(baselines[(agent, game)] - random[game], 1.0)
            out[rows.index] = (scores - random[game]) / scale
        elif env == "dmc":
            out[rows.index] = scores / DMC_MAX_RETURN
        elif env == "classic":
            out[rows.index] = classic_normalized(game, scores)
        else:
            raise ValueError(f"env={env} has no normalisation rule (atari, minatar, mujoco, dmc and classic have one)")
    return out
