"""SAC gradient updates per second at width 1 and 5, dense and 95% sparse, with walker-walk's sizes (24 observation
dims, 6 action dims, batch 256, 2x256 MLPs at width 1).

    python benchmarks/sac_updates.py [--rounds 3] [--threads 1]

A sparse update is the dense update with the pruner attached (the masks multiplied into the weights after every
optimizer step, in its post-step hooks, as the pruning method does): masked weights stay dense tensors, so
sparsity gives no speed by itself. Dense and sparse alternate within each width, and each figure is the median of
its rounds, so drift on this noisy machine hits both sides of a ratio.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from timing import median_ms

from agents.networks import MLPConfig
from agents.sac import SAC, SACConfig
from core.protocols import Batch
from pruning.pruner import MagnitudePruner

OBS, ACT, BATCH = 24, 6, 256


def update_ms(width: float, sparsity: float, repeats: int) -> float:
    torch.manual_seed(0)
    agent = SAC(SACConfig(), MLPConfig(width=width, hidden_sizes=[256, 256]), (OBS,), ACT, np.random.default_rng(0),
                torch.device("cpu"))
    pruner = MagnitudePruner(agent.networks())
    if sparsity > 0:
        pruner.prune_to(sparsity)
    pruner.attach(agent.optimizers())
    g = torch.Generator().manual_seed(0)
    batch = Batch(torch.randn(BATCH, OBS, generator=g), torch.rand(BATCH, ACT, generator=g) * 2 - 1,
                  torch.randn(BATCH, generator=g), torch.randn(BATCH, OBS, generator=g), torch.full((BATCH,), 0.99),
                  torch.ones(BATCH), np.arange(BATCH))

    return median_ms(lambda: agent.update(batch), repeats, warmup=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"SAC update, batch {BATCH}, obs {OBS}, actions {ACT}, {args.threads} thread(s)")
    print(f"{'width':>5} {'hidden':>6} {'dense ms':>9} {'upd/s':>7} {'95% ms':>8} {'upd/s':>7} {'sparse/dense':>12}")
    for width in (1, 5):
        repeats = 60 if width == 1 else 12
        dense, sparse = [], []
        for _ in range(args.rounds):
            dense.append(update_ms(width, 0.0, repeats))
            sparse.append(update_ms(width, 0.95, repeats))
        d, s = statistics.median(dense), statistics.median(sparse)
        print(f"{width:>5} {256 * width:>6} {d:>9.2f} {1e3 / d:>7.1f} {s:>8.2f} {1e3 / s:>7.1f} {s / d:>12.3f}")


if __name__ == "__main__":
    main()
