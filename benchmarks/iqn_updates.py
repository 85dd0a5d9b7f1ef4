"""IQN's and M-IQN's gradient update against DQN's on the same network, side by side in one process.

    python benchmarks/iqn_updates.py [--rounds 3] [--threads 1]

Each setting builds the three agents from the suite's composed config (the tuned file of the pair applies: MinAtar
takes N = N' = K = 32 and batch 32; Atari the schema's N = N' = 64, K = 32), feeds them the same random batch, and
times ``agent.update``; the agents alternate within each round and each figure is the median over rounds, so drift
on this noisy machine hits every side of a ratio. IQN runs its network on B·N rows (and the target on B·N' and B·K
more), so its update costs a multiple of DQN's that grows with N.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from timing import median_ms

import suite
from core.protocols import Batch

SETTINGS = {  # name -> (overrides, observation shape, actions, repeats)
    "MinAtar breakout, width 1": (["env=minatar", "env.id=breakout"], (4, 10, 10), 3, 40),
    "MinAtar breakout, width 3": (["env=minatar", "env.id=breakout", "network.width=3"], (4, 10, 10), 3, 15),
    "Atari Pong, Nature CNN": (["env.id=Pong"], (4, 84, 84), 6, 3),
}


def update_ms(agent_name: str, overrides: list[str], shape: tuple[int, ...], n_actions: int, repeats: int) -> float:
    cfg = suite.compose([f"agent={agent_name}", *overrides])
    torch.manual_seed(0)
    agent = suite.REGISTRIES["agent"].get(agent_name).target(cfg.agent, cfg.network, shape, n_actions,
                                                             np.random.default_rng(0), torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    b = cfg.agent.batch_size
    obs = lambda: torch.randint(0, 2 if shape[1] == 10 else 256, (b, *shape), generator=g, dtype=torch.uint8)  # noqa: E731
    batch = Batch(obs(), torch.randint(0, n_actions, (b,), generator=g), torch.randn(b, generator=g), obs(),
                  torch.full((b,), 0.99), torch.ones(b), np.arange(b))
    return median_ms(lambda: agent.update(batch), repeats, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suite.register_configs()
    print(f"update time, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'setting':<28} {'DQN ms':>8} {'IQN ms':>8} {'M-IQN ms':>9} {'IQN/DQN':>8} {'M-IQN/DQN':>10}")
    for name, (overrides, shape, n_actions, repeats) in SETTINGS.items():
        times = {a: [] for a in ("dqn", "iqn", "miqn")}
        for _ in range(args.rounds):
            for a in times:
                times[a].append(update_ms(a, overrides, shape, n_actions, repeats))
        d, i, m = (statistics.median(times[a]) for a in ("dqn", "iqn", "miqn"))
        print(f"{name:<28} {d:>8.2f} {i:>8.2f} {m:>9.2f} {i / d:>8.2f} {m / d:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
