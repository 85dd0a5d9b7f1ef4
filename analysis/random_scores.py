"""Measure a uniform random policy's mean return on each MinAtar game, through the suite's own env (sticky actions
0.1, difficulty ramping): the lower anchor of MinAtar's normalised score. Writes ``analysis/data/minatar_random.csv``.

``python -m analysis.random_scores [--episodes 1000] [--seed 0]`` (1,000 episodes per game, as MinAtar's
``examples/random_play.py``; about two minutes on one core).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from envs import make_env
from envs.minatar import GAMES, MinAtarConfig

OUT = Path(__file__).resolve().parent / "data" / "minatar_random.csv"


def random_returns(game: str, episodes: int, seed: int) -> np.ndarray:
    env = make_env(MinAtarConfig(id=game), seed)
    returns = []
    env.reset(seed=seed)
    while len(returns) < episodes:
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            returns.append(float(info["episode"]["r"]))
            env.reset()
    env.close()
    return np.asarray(returns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    lines = [f"# Uniform random policy on MinAtar (minatar 1.0.15, sticky actions 0.1, difficulty ramping), "
             f"{args.episodes} episodes per game, seed {args.seed}.",
             "# Made by: python -m analysis.random_scores", "game,random,stderr,episodes"]
    for game in GAMES:
        r = random_returns(game, args.episodes, args.seed)
        lines.append(f"{game},{r.mean():.4f},{r.std(ddof=1) / np.sqrt(len(r)):.4f},{len(r)}")
        print(lines[-1], flush=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
