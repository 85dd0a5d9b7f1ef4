"""Prioritized sampling cost at 1M capacity next to a DQN learner step, measured in the same run.

    python benchmarks/sum_tree.py

Times one stratified sample of 32 indices plus writing 32 priorities back (what a prioritized replay adds per
gradient update), and a Nature CNN learner step (batch 32, target forward + forward + backward + Adam).
"""

from __future__ import annotations

import numpy as np
import torch
from timing import median_ms

from agents.dqn import DQN, DQNConfig
from agents.networks import NatureCNNConfig
from agents.replay import Batch
from agents.sum_tree import SumTree


def main() -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(1_000_000)
    tree.set(np.arange(1_000_000), rng.random(1_000_000) + 0.01)

    def per_step():
        idx = tree.stratified_sample(32, rng)
        tree.set(idx, rng.random(32))

    sample = median_ms(lambda: tree.stratified_sample(32, rng), 2000)
    both = median_ms(per_step, 2000)
    agent = DQN(DQNConfig(), NatureCNNConfig(), (4, 84, 84), 6, np.random.default_rng(0), torch.device("cpu"))
    batch = Batch(torch.randint(0, 255, (32, 4, 84, 84), dtype=torch.uint8), torch.randint(0, 6, (32,)),
                  torch.rand(32), torch.randint(0, 255, (32, 4, 84, 84), dtype=torch.uint8), torch.zeros(32))
    learn = median_ms(lambda: agent.update(batch), 30, warmup=5)
    print(f"sum tree at 1M: stratified sample(32) {sample:.3f} ms, sample + set(32) {both:.3f} ms")
    print(f"Nature CNN learner step {learn:.1f} ms -> prioritized sampling adds {both / learn:.2%} per update")


if __name__ == "__main__":
    main()
