"""Measure a uniform random policy's mean return through the suite's own envs: the lower anchor of the MinAtar,
MuJoCo and classic-control normalised scores. Writes ``analysis/data/<env>_random.csv``.

``python -m analysis.random_scores [--env minatar|classic|mujoco] [--episodes 1000] [--seed 0]`` (1,000 episodes per
game, as MinAtar's ``examples/random_play.py``; MinAtar about two minutes on one core, classic control about three).
MinAtar runs with sticky actions 0.1 and difficulty ramping, the suite's defaults. The MuJoCo table was made with
``--episodes 100`` (most of its episodes are 1,000 steps of physics).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from envs import make_env
from envs.classic import CLASSIC_IDS, ClassicConfig
from envs.minatar import GAMES, MinAtarConfig
from envs.mujoco import MuJoCoConfig, mujoco_ids

DATA = Path(__file__).resolve().parent / "data"
GAMES_OF = {"minatar": (GAMES, MinAtarConfig, "minatar 1.0.15, sticky actions 0.1, difficulty ramping"),
            "classic": (CLASSIC_IDS, ClassicConfig, "Gymnasium classic control, continuous actions in [-1, 1]"),
            "mujoco": (mujoco_ids(), MuJoCoConfig, "Gymnasium 1.4.0 MuJoCo -v5 on mujoco 3.17.0, actions uniform in "
                       "[-1, 1]")}
DEFAULT_EPISODES = 1000


def random_returns(cfg, episodes: int, seed: int) -> np.ndarray:
    env = make_env(cfg, seed)
    returns = []
    env.reset(seed=seed)
    while len(returns) < episodes:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            returns.append(float(info["episode"]["r"]))
            env.reset()
    env.close()
    return np.asarray(returns)


def header(env: str, episodes: int, seed: int) -> list[str]:
    """The table's comment lines, naming the command that rebuilds it, and its column names."""
    flags = "" if episodes == DEFAULT_EPISODES else f" --episodes {episodes}"
    flags += "" if seed == 0 else f" --seed {seed}"
    return [f"# Uniform random policy ({GAMES_OF[env][2]}), {episodes} episodes per game, seed {seed}.",
            f"# Made by: python -m analysis.random_scores --env {env}{flags}", "game,random,stderr,episodes"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", choices=sorted(GAMES_OF), default="minatar")
    parser.add_argument("--episodes", type=int, default=DEFAULT_EPISODES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    games, config, _ = GAMES_OF[args.env]
    out = DATA / f"{args.env}_random.csv"
    lines = header(args.env, args.episodes, args.seed)
    for game in games:
        r = random_returns(config(id=game), args.episodes, args.seed)
        lines.append(f"{game},{r.mean():.4f},{r.std(ddof=1) / np.sqrt(len(r)):.4f},{len(r)}")
        print(lines[-1], flush=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
